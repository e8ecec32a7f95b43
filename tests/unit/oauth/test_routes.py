"""The OAuth endpoints over HTTP in process: their blocking work runs off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tabard.errors import Unauthenticated
from tabard.oauth import ASSERTION_JWT_SPIFFE, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_JWT
from tabard.oauth.errors import TemporarilyUnavailable
from tabard.server.routes.oauth import router
from tests.unit.oauth.conftest import RESOURCE, World, instance


class _NoAdmins:
    def authenticate(self, token: str) -> None:
        raise Unauthenticated("no admin tokens here")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def http(world: World) -> TestClient:
    app = FastAPI()
    app.include_router(router)
    app.state.services = SimpleNamespace(oauth=world.server, admin_tokens=_NoAdmins())
    return TestClient(app)


def _watch(world: World, name: str, seen: list[bool]) -> None:
    original: Callable[..., Any] = getattr(world.server, name)

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(_on_event_loop())
        return original(*args, **kwargs)

    setattr(world.server, name, watched)


def test_the_endpoints_do_their_blocking_work_off_the_event_loop(world: World,
                                                                  http: TestClient) -> None:
    seen: list[bool] = []
    for name in ("token", "authenticate_client", "introspect", "revoke", "register"):
        _watch(world, name, seen)
    svid = world.svid(instance("helper"))
    issued = http.post("/oauth/token", data={
        "grant_type": GRANT_TOKEN_EXCHANGE, "subject_token": world.user_token(),
        "subject_token_type": TOKEN_TYPE_JWT, "client_assertion_type": ASSERTION_JWT_SPIFFE,
        "client_assertion": svid, "resource": RESOURCE})
    assert issued.status_code == 200, issued.text
    client = {"client_assertion_type": ASSERTION_JWT_SPIFFE,
              "client_assertion": world.svid(instance("helper"))}
    seen_token = http.post("/oauth/introspect",
                           data={**client, "token": issued.json()["access_token"]})
    assert seen_token.json()["active"] is True
    assert http.post("/oauth/revoke", data={
        **client, "client_assertion": world.svid(instance("helper")),
        "token": issued.json()["access_token"]}).status_code == 200
    registered = http.post("/oauth/register", json={"software_statement": svid})
    assert registered.status_code == 201, registered.text
    assert len(seen) >= 6 and not any(seen), seen


def test_temporarily_unavailable_says_when_to_retry(world: World, http: TestClient) -> None:
    def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise TemporarilyUnavailable("the audit log cannot record the grant")

    world.server.token = unavailable  # type: ignore[method-assign]
    response = http.post("/oauth/token", data={"grant_type": GRANT_TOKEN_EXCHANGE})
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["cache-control"] == "no-store"
