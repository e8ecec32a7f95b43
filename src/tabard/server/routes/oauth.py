"""The OAuth 2 authorization server's HTTP face (``docs/design/oauth.md``).

Token, introspection and revocation endpoints take ``application/x-www-form-urlencoded``
bodies and answer RFC 6749 §5.2 JSON errors with ``Cache-Control: no-store``. They are served
on both listeners: on the node API listener (mTLS) the client's X509-SVID reaches the AS, which
is what metadata advertises as ``mtls_endpoint_aliases`` (RFC 8705 §5). The bodies are parsed
here with :func:`urllib.parse.parse_qs` (form parsing in the web framework needs a multipart
package the server does not otherwise use).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tabard.config import parse_duration
from tabard.errors import NotFound, Unauthenticated
from tabard.oauth import (
    AuthorizationServer,
    Client,
    DemoIssuerDisabled,
    InvalidClientMetadata,
    InvalidRequest,
    InvalidToken,
    OAuthClient,
    OAuthError,
)
from tabard.server.deps import Admin, ServerServices, Services

router = APIRouter(tags=["oauth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM = "application/x-www-form-urlencoded"
_MAX_FORM = 64 * 1024


def _as(services: ServerServices) -> AuthorizationServer:
    if services.oauth is None:
        raise NotFound("this server runs no authorization server")
    return services.oauth


def _error(exc: OAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if exc.status == 503:
        headers["Retry-After"] = "5"  # RFC 9110 §10.2.3; RFC 7009 §2.2.1
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tabard"' if exc.code == "invalid_token" \
            else 'Basic realm="tabard"'
    return JSONResponse({"error": exc.code, "error_description": exc.message},
                        status_code=exc.status, headers=headers)


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=_NO_STORE)


async def _form(request: Request) -> dict[str, list[str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise InvalidRequest(f"the request body must be {_FORM}")
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise InvalidRequest("the request body is too large")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                        max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the request body is not a valid form") from None


def _tls_chain(request: Request) -> list[bytes]:
    tls = request.scope.get("extensions", {}).get("tls") or {}
    return list(tls.get("client_cert_chain") or [])


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _caller(services: ServerServices, request: Request, form: dict[str, list[str]],
            server: AuthorizationServer) -> Client | None:
    """An admin (None) by bearer token, else an authenticated client; 401 otherwise."""
    bearer = _bearer(request)
    if bearer is not None:
        try:
            services.admin_tokens.authenticate(bearer)
        except Unauthenticated:
            raise InvalidToken("the bearer token is not a valid admin token") from None
        return None
    return server.authenticate_client(form, _tls_chain(request))


async def _oauth(run: Callable[[], Response]) -> Response:
    """Run the blocking part of an endpoint (SQL, audit appends, remote JWKS fetches) in
    the thread pool, never on the event loop; OAuth errors become RFC 6749 §5.2 JSON."""
    try:
        return await run_in_threadpool(run)
    except OAuthError as exc:
        return _error(exc)



async def _with_form(request: Request,
                     run: Callable[[dict[str, list[str]]], Response]) -> Response:
    """Read the form body (an OAuth error if it is not one), then :func:`_oauth`."""
    try:
        form = await _form(request)
    except OAuthError as exc:
        return _error(exc)
    return await _oauth(lambda: run(form))


def _single(form: dict[str, list[str]], name: str) -> str | None:
    """A parameter sent exactly once; repeated or missing reads as absent."""
    values = form.get(name) or []
    return values[0] if len(values) == 1 else None

@router.get("/.well-known/oauth-authorization-server",
            summary="Authorization server metadata (RFC 8414)")
def metadata(services: Services) -> JSONResponse:
    return JSONResponse(_as(services).metadata(), headers={"Cache-Control": "max-age=300"})


@router.get("/oauth/jwks", summary="The AS signing keys (JWKS) for its access tokens")
def jwks(services: Services) -> JSONResponse:
    return JSONResponse(_as(services).jwks(), headers={"Cache-Control": "max-age=300"})


@router.post("/oauth/token", summary="Token endpoint: token exchange, JWT bearer (ID-JAG), "
             "client credentials")
async def token(request: Request, services: Services) -> Response:
    server = _as(services)
    chain = _tls_chain(request)
    return await _with_form(request, lambda form: _json(server.token(form, chain)))


@router.post("/oauth/introspect", summary="Token introspection (RFC 7662)")
async def introspect(request: Request, services: Services) -> Response:
    server = _as(services)

    def run(form: dict[str, list[str]]) -> Response:
        _caller(services, request, form, server)
        return _json(server.introspect(_single(form, "token")))

    return await _with_form(request, run)


@router.post("/oauth/revoke", summary="Token revocation (RFC 7009); revokes the tokens "
             "exchanged from it too")
async def revoke(request: Request, services: Services) -> Response:
    server = _as(services)

    def run(form: dict[str, list[str]]) -> Response:
        server.revoke(_single(form, "token"), _caller(services, request, form, server))
        return Response(status_code=200, headers=_NO_STORE)

    return await _with_form(request, run)


@router.post("/oauth/register", summary="Dynamic client registration (RFC 7591)")
async def register(request: Request, services: Services) -> Response:
    server = _as(services)
    try:
        body = await request.json()
    except ValueError:
        return _error(InvalidClientMetadata("the body must be a JSON object"))
    if not isinstance(body, dict):
        return _error(InvalidClientMetadata("the body must be a JSON object"))

    def run() -> Response:
        bearer = _bearer(request)
        admin = False
        if bearer is not None:
            try:
                services.admin_tokens.authenticate(bearer)
            except Unauthenticated:
                raise InvalidToken("the initial access token is not valid") from None
            admin = True
        return _json(server.register(body, admin=admin), status=201)

    return await _oauth(run)


# --- the dev demo user issuer -----------------------------------------------------------------


@router.get("/dev/issuer/.well-known/openid-configuration",
            summary="Discovery of the dev demo user issuer (tabard dev only)")
def demo_discovery(services: Services) -> JSONResponse:
    server = _as(services)
    issuer = server.demo_issuer
    if issuer is None:
        raise NotFound("the demo user issuer runs only under `tabard dev`")
    return JSONResponse({"issuer": issuer, "jwks_uri": f"{issuer}/jwks",
                         "id_token_signing_alg_values_supported": ["ES256"]})


@router.get("/dev/issuer/jwks", summary="Keys of the dev demo user issuer (tabard dev only)")
def demo_jwks(services: Services) -> JSONResponse:
    try:
        return JSONResponse(_as(services).demo_jwks())
    except DemoIssuerDisabled as exc:
        raise NotFound(exc.message) from None


class UserTokenRequest(BaseModel):
    user: str = Field(min_length=1, max_length=255)
    audience: str | None = Field(default=None, max_length=2048)
    scope: str | None = Field(default=None, max_length=8192)
    ttl: str | None = Field(default=None, max_length=32, examples=["15m"])


class UserTokenResponse(BaseModel):
    token: str
    issuer: str


@router.post("/api/v1/oauth/user-tokens", response_model=UserTokenResponse,
             summary="A user token from the dev demo issuer (tabard dev only)")
def user_token(body: UserTokenRequest, services: Services, admin: Admin) -> UserTokenResponse:
    server = _as(services)
    ttl = parse_duration(body.ttl) if body.ttl else timedelta(minutes=15)
    token = server.mint_user_token(body.user, audience=body.audience, scope=body.scope, ttl=ttl)
    return UserTokenResponse(token=token, issuer=server.demo_issuer or "")


class ClientView(BaseModel):
    client_id: str
    client_name: str
    auth_method: str
    grant_types: list[str]
    scope: str | None
    created_at: Any

    @classmethod
    def of(cls, c: OAuthClient) -> ClientView:
        return cls(client_id=c.client_id, client_name=c.client_name, auth_method=c.auth_method,
                   grant_types=list(c.grant_types), scope=c.scope, created_at=c.created_at)


@router.get("/api/v1/oauth/clients", response_model=list[ClientView],
            summary="Registered OAuth clients")
def list_clients(services: Services, admin: Admin) -> list[ClientView]:
    return [ClientView.of(c) for c in _as(services).clients()]


@router.delete("/api/v1/oauth/clients/{client_id:path}", status_code=204,
               response_class=Response, summary="Delete a registered OAuth client")
def delete_client(client_id: str, services: Services, admin: Admin) -> Response:
    if not _as(services).delete_client(client_id):
        raise NotFound(f"no registered client {client_id!r}")
    return Response(status_code=204)
