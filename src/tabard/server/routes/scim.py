"""SCIM 2.0 at ``/scim/v2`` (RFC 7644), and the admin API for people and SCIM tokens.

The SCIM routes speak SCIM, not problem+json: ``application/scim+json`` bodies, errors as
``urn:ietf:params:scim:api:messages:2.0:Error`` with ``status`` as a string and ``scimType``
(RFC 7644 §3.12), and a SCIM bearer token (``tabard scim token create``) as the only
credential: an admin token does not open them, and a SCIM token does not open ``/api/v1``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tabard.directory import (
    SCIM_MEDIA_TYPE,
    Directory,
    DirectoryUser,
    InvalidSyntaxError,
    NotSupportedError,
    ScimClient,
    ScimEndpoint,
    ScimResult,
    ScimTokenRecord,
    UserDetails,
)
from tabard.directory.scim import ERROR_SCHEMA
from tabard.errors import (
    Conflict,
    Denied,
    Invalid,
    NotFound,
    TabardError,
    Unauthenticated,
    Unavailable,
)
from tabard.server.deps import Admin, Services

__all__ = ["SCIM_PREFIX", "admin_router", "router", "scim_router"]

SCIM_PREFIX = "/scim/v2"
log = logging.getLogger("tabard.server.scim")

# code -> (HTTP status, scimType): RFC 7644 §3.12, Tables 8 and 9
_BY_CODE: dict[str, tuple[int, str | None]] = {
    "invalid_filter": (400, "invalidFilter"),
    "invalid_syntax": (400, "invalidSyntax"),
    "invalid_path": (400, "invalidPath"),
    "no_target": (400, "noTarget"),
    "invalid_value": (400, "invalidValue"),
    "mutability": (400, "mutability"),
    "too_many": (400, "tooMany"),
    "invalid_version": (400, "invalidVers"),
    "user_exists": (409, "uniqueness"),
    "group_exists": (409, "uniqueness"),
    "precondition_failed": (412, None),
    "not_implemented": (501, None),
}
_BY_CATEGORY: list[tuple[type[TabardError], tuple[int, str | None]]] = [
    (Invalid, (400, "invalidValue")),
    (Unauthenticated, (401, None)),
    (Denied, (403, None)),
    (NotFound, (404, None)),
    (Conflict, (409, None)),
    (Unavailable, (503, None)),
]


def scim_error(status: int, detail: str, scim_type: str | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return JSONResponse(body, status_code=status, media_type=SCIM_MEDIA_TYPE, headers=headers)


def _error_response(exc: TabardError, path: str) -> JSONResponse:
    status, scim_type = _BY_CODE.get(exc.code) or next(
        (mapped for cls, mapped in _BY_CATEGORY if isinstance(exc, cls)), (500, None))
    if status == 500:
        log.error("unclassified error", extra={"code": exc.code, "path": path})
        return scim_error(500, "the server could not complete the request")
    headers = {"WWW-Authenticate": 'Bearer realm="tabard-scim"'} if status == 401 else None
    return scim_error(status, exc.message, scim_type, headers)


class ScimRoute(APIRoute):
    """Turns every failure of a SCIM route into a SCIM error, before the app-wide
    problem+json handlers could see it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def scim_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except TabardError as exc:
                return _error_response(exc, request.url.path)
            except RequestValidationError:
                return scim_error(400, "the request is not valid", "invalidSyntax")
            except StarletteHTTPException as exc:
                return scim_error(exc.status_code, str(exc.detail))
            except Exception:
                log.exception("unexpected error", extra={"path": request.url.path})
                return scim_error(500, "the server could not complete the request")

        return scim_handler


scim_router = APIRouter(prefix=SCIM_PREFIX, tags=["scim"], route_class=ScimRoute)


def _directory(services: Services) -> Directory:
    return services.directory


def require_scim_client(request: Request, services: Services) -> ScimClient:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return services.directory.scim_tokens.authenticate(
        token.strip() if scheme.lower() == "bearer" else None)


Client = Annotated[ScimClient, Depends(require_scim_client)]
DirectoryDep = Annotated[Directory, Depends(_directory)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + SCIM_PREFIX


def _respond(result: ScimResult) -> Response:
    headers = {}
    if result.etag:
        headers["ETag"] = result.etag
    if result.location and result.status == 201:
        headers["Location"] = result.location
    if result.body is None:
        return Response(status_code=result.status, headers=headers)
    return JSONResponse(result.body, status_code=result.status, media_type=SCIM_MEDIA_TYPE,
                        headers=headers)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidSyntaxError("the request body is not JSON") from None


def _query(request: Request) -> dict[str, str]:
    return dict(request.query_params)


# --- discovery (RFC 7644 §4) ---------------------------------------------------------------

@scim_router.get("/ServiceProviderConfig", summary="SCIM service provider configuration")
async def service_provider_config(request: Request, directory: DirectoryDep,
                                  client: Client) -> Response:
    return _respond(directory.scim.service_provider_config(_base(request)))


@scim_router.get("/ResourceTypes", summary="SCIM resource types")
async def resource_types(request: Request, directory: DirectoryDep, client: Client) -> Response:
    return _respond(directory.scim.resource_types(_base(request)))


@scim_router.get("/ResourceTypes/{type_id}", summary="One SCIM resource type")
async def resource_type(type_id: str, request: Request, directory: DirectoryDep,
                        client: Client) -> Response:
    return _respond(directory.scim.resource_type(_base(request), type_id))


@scim_router.get("/Schemas", summary="SCIM schemas")
async def schemas(request: Request, directory: DirectoryDep, client: Client) -> Response:
    return _respond(directory.scim.schemas(_base(request)))


@scim_router.get("/Schemas/{schema_id}", summary="One SCIM schema")
async def schema(schema_id: str, request: Request, directory: DirectoryDep,
                 client: Client) -> Response:
    return _respond(directory.scim.schema(_base(request), schema_id))


@scim_router.post("/.search", summary="Search users and groups (RFC 7644 §3.4.3)")
async def search_all(request: Request, directory: DirectoryDep, client: Client) -> Response:
    body = await _json(request)
    return _respond(await run_in_threadpool(directory.scim.search, None, body, _base(request)))


# --- Users and Groups (RFC 7644 §3.3-3.6) --------------------------------------------------

def _resource_routes(endpoint: ScimEndpoint) -> None:
    """The six routes of one resource endpoint, ``/Users`` or ``/Groups``."""
    path, noun = f"/{endpoint.value}", endpoint.resource_type.lower()

    async def list_resources(request: Request, directory: DirectoryDep,
                             client: Client) -> Response:
        return _respond(await run_in_threadpool(
            directory.scim.list_resources, endpoint, _base(request), _query(request)))

    async def search(request: Request, directory: DirectoryDep, client: Client) -> Response:
        body = await _json(request)
        return _respond(await run_in_threadpool(directory.scim.search, endpoint, body,
                                                _base(request)))

    async def create(request: Request, directory: DirectoryDep, client: Client) -> Response:
        body = await _json(request)
        return _respond(await run_in_threadpool(
            directory.scim.create, endpoint, body, _base(request), _query(request)))

    async def get(resource_id: str, request: Request, directory: DirectoryDep,
                  client: Client) -> Response:
        base, query = _base(request), _query(request)
        if_none_match = request.headers.get("if-none-match")
        return _respond(await run_in_threadpool(
            lambda: directory.scim.get(endpoint, resource_id, base, query,
                                       if_none_match=if_none_match)))

    async def replace(resource_id: str, request: Request, directory: DirectoryDep,
                      client: Client) -> Response:
        body, base, query = await _json(request), _base(request), _query(request)
        if_match = request.headers.get("if-match")
        return _respond(await run_in_threadpool(
            lambda: directory.scim.replace(endpoint, resource_id, body, base, query,
                                           if_match=if_match)))

    async def patch(resource_id: str, request: Request, directory: DirectoryDep,
                    client: Client) -> Response:
        body, base, query = await _json(request), _base(request), _query(request)
        if_match = request.headers.get("if-match")
        return _respond(await run_in_threadpool(
            lambda: directory.scim.patch(endpoint, resource_id, body, base, query,
                                         if_match=if_match)))

    async def delete(resource_id: str, request: Request, directory: DirectoryDep,
                     client: Client) -> Response:
        if_match = request.headers.get("if-match")
        return _respond(await run_in_threadpool(
            lambda: directory.scim.delete(endpoint, resource_id, if_match=if_match)))

    item = path + "/{resource_id}"
    add = scim_router.add_api_route
    add(path, list_resources, methods=["GET"], name=f"list_{noun}s",
        summary=f"List {noun}s, with filter and paging (RFC 7644 §3.4.2)")
    add(path + "/.search", search, methods=["POST"], name=f"search_{noun}s",
        summary=f"Search {noun}s (RFC 7644 §3.4.3)")
    add(path, create, methods=["POST"], status_code=201, name=f"create_{noun}",
        summary=f"Create a {noun} (RFC 7644 §3.3)")
    add(item, get, methods=["GET"], name=f"get_{noun}", summary=f"Get a {noun}")
    add(item, replace, methods=["PUT"], name=f"replace_{noun}",
        summary=f"Replace a {noun} (RFC 7644 §3.5.1)")
    add(item, patch, methods=["PATCH"], name=f"patch_{noun}",
        summary=f"Modify a {noun} (RFC 7644 §3.5.2)")
    add(item, delete, methods=["DELETE"], status_code=204, name=f"delete_{noun}",
        summary=f"Delete a {noun} (RFC 7644 §3.6)")


for _endpoint in ScimEndpoint:
    _resource_routes(_endpoint)


_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@scim_router.api_route("/{rest:path}", methods=_ANY_METHOD, include_in_schema=False)
async def unknown(rest: str, request: Request, client: Client) -> Response:
    """Anything else under /scim/v2: 405 where the path exists with other methods, 501 for
    the optional endpoints tabard does not offer (``/Bulk``, ``/Me``), else 404."""
    path = request.url.path
    allowed = sorted({m for route in scim_router.routes
                      if isinstance(route, APIRoute) and route.path_regex.match(path)
                      and route.name != "unknown" for m in route.methods or ()})
    if allowed:
        return scim_error(405, f"{request.method} is not allowed on {path}",
                          headers={"Allow": ", ".join(allowed)})
    if re.fullmatch(r"(?:Bulk|Me)(?:/.*)?", rest):
        return _error_response(NotSupportedError(f"/{rest.split('/')[0]} is not supported"),
                               path)
    return scim_error(404, f"no SCIM endpoint at {path}")


# --- admin API: people and SCIM tokens (/api/v1, admin token, problem+json) ----------------

admin_router = APIRouter(prefix="/api/v1", tags=["directory"])


class ScimTokenView(BaseModel):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, r: ScimTokenRecord) -> ScimTokenView:
        return cls(id=r.id, name=r.name, created_at=r.created_at, last_used_at=r.last_used_at,
                   revoked_at=r.revoked_at)


class CreateScimToken(BaseModel):
    name: str = Field(default="scim", min_length=1, max_length=64)


class CreatedScimToken(ScimTokenView):
    token: str = Field(description="Shown only in this response; tabard stores only a digest")


@admin_router.get("/scim-tokens", response_model=list[ScimTokenView],
                  summary="List SCIM tokens (no secrets)")
def list_scim_tokens(services: Services, admin: Admin) -> list[ScimTokenView]:
    return [ScimTokenView.of(r) for r in services.directory.scim_tokens.list()]


@admin_router.post("/scim-tokens", response_model=CreatedScimToken, status_code=201,
                   summary="Create a SCIM token for an identity provider")
def create_scim_token(body: CreateScimToken, services: Services,
                      admin: Admin) -> CreatedScimToken:
    issued = services.directory.scim_tokens.create(body.name)
    return CreatedScimToken(**ScimTokenView.of(issued.record).model_dump(), token=issued.token)


@admin_router.delete("/scim-tokens/{token_id}", status_code=204, response_class=Response,
                     summary="Revoke a SCIM token")
def revoke_scim_token(token_id: str, services: Services, admin: Admin) -> Response:
    services.directory.scim_tokens.revoke(token_id)
    return Response(status_code=204)


class GroupRef(BaseModel):
    id: str
    name: str
    direct: bool


class UserView(BaseModel):
    id: str
    user_name: str
    display_name: str | None
    active: bool
    user_type: str | None
    is_person: bool
    emails: list[str]
    roles: list[str] = Field(description="Effective tabard roles: own and from tabard-<role>")
    external_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: DirectoryUser, roles: frozenset[str]) -> UserView:
        return cls(id=user.id, user_name=user.user_name, display_name=user.display_name,
                   active=user.active, user_type=user.user_type, is_person=user.is_person,
                   emails=list(user.emails), roles=sorted(roles), external_id=user.external_id,
                   created_at=user.created_at, updated_at=user.updated_at)


class UserDetailView(UserView):
    groups: list[GroupRef]
    own_roles: list[str] = Field(description="The user's own SCIM roles values")

    @classmethod
    def of_details(cls, details: UserDetails) -> UserDetailView:
        base = UserView.of(details.user, details.roles)
        return cls(**base.model_dump(), own_roles=list(details.user.roles), groups=[
            GroupRef(id=m.group.id, name=m.group.display_name, direct=m.direct)
            for m in details.memberships])


class CreateUser(BaseModel):
    user_name: str = Field(min_length=1, max_length=255)
    display_name: str | None = Field(default=None, max_length=1024)
    emails: list[str] = Field(default_factory=list, max_length=32)
    roles: list[str] = Field(default_factory=list, max_length=64)
    user_type: str | None = Field(default=None, max_length=255)
    active: bool = True


@admin_router.get("/users", response_model=list[UserView], summary="List people")
def list_users(services: Services, admin: Admin) -> list[UserView]:
    people = services.directory.people
    memberships = people.membership_resolver()
    return [UserView.of(u, people.roles_of(u, memberships(u.id))) for u in people.list_users()]


@admin_router.get("/users/{user_name}", response_model=UserDetailView,
                  summary="One person: groups, roles, status")
def show_user(user_name: str, services: Services, admin: Admin) -> UserDetailView:
    return UserDetailView.of_details(services.directory.people.describe(user_name))


@admin_router.post("/users", response_model=UserDetailView, status_code=201,
                   summary="Create a person without an identity provider")
def create_user(body: CreateUser, services: Services, admin: Admin) -> UserDetailView:
    directory = services.directory
    user = directory.scim.add_user(body.user_name, display_name=body.display_name,
                                   emails=body.emails, roles=body.roles,
                                   user_type=body.user_type, active=body.active)
    return UserDetailView.of_details(directory.people.describe(user.user_name))


@admin_router.post("/users/{user_name}/deactivate", response_model=UserDetailView,
                   summary="Deactivate a person (their agents are checked for orphans)")
def deactivate_user(user_name: str, services: Services, admin: Admin) -> UserDetailView:
    people = services.directory.people
    user = people.set_active(user_name, False)
    return UserDetailView.of_details(people.describe(user.user_name))


@admin_router.post("/users/{user_name}/activate", response_model=UserDetailView,
                   summary="Reactivate a person")
def activate_user(user_name: str, services: Services, admin: Admin) -> UserDetailView:
    people = services.directory.people
    user = people.set_active(user_name, True)
    return UserDetailView.of_details(people.describe(user.user_name))


router = APIRouter()
router.include_router(scim_router)
router.include_router(admin_router)
