"""The admin API client the CLI uses: one place that turns problem responses into errors."""

from __future__ import annotations

import os
from typing import Any

import httpx

from tabard.errors import (
    Conflict,
    Denied,
    Invalid,
    NotFound,
    TabardError,
    Unauthenticated,
    Unavailable,
)

__all__ = ["DEFAULT_SERVER", "AdminClient"]

DEFAULT_SERVER = "http://127.0.0.1:8080"
_BY_STATUS: dict[int, type[TabardError]] = {
    400: Invalid, 401: Unauthenticated, 403: Denied, 404: NotFound, 409: Conflict,
    413: Invalid, 422: Invalid, 503: Unavailable,
}


class AdminClient:
    def __init__(self, server: str | None = None, token: str | None = None,
                 timeout: float = 30.0) -> None:
        self.server = (server or os.environ.get("TABARD_SERVER_URL") or DEFAULT_SERVER).rstrip("/")
        self._token = token if token is not None else os.environ.get("TABARD_ADMIN_TOKEN")
        self._http = httpx.Client(base_url=self.server, timeout=timeout)

    def _headers(self, auth: bool) -> dict[str, str]:
        if not auth:
            return {}
        if not self._token:
            raise Unauthenticated("no admin token: set TABARD_ADMIN_TOKEN")
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, *, json: Any = None, auth: bool = True) -> Any:
        try:
            response = self._http.request(method, path, json=json, headers=self._headers(auth))
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the server at {self.server}: "
                              f"{exc.__class__.__name__}") from None
        if response.status_code >= 400:
            detail = response.reason_phrase
            try:
                body = response.json()
                detail = body.get("detail") or detail
            except ValueError:
                pass
            error = _BY_STATUS.get(response.status_code, TabardError)
            raise error(f"{detail} (HTTP {response.status_code})")
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def get(self, path: str, *, auth: bool = True) -> Any:
        return self.request("GET", path, auth=auth)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
