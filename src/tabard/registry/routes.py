"""Gateway routes: what the gateway serves at ``/mcp/N``, ``/a2a/N`` or ``/http/N/...``.

A :class:`Route` names an upstream, its protocol, the credential the gateway injects
(:class:`CredentialSpec`, never a value: secrets are named, the vault holds them), the DLP
profile applied to responses and the timeouts. Routes come from two places: the ``[[gateway.
routes]]`` array of ``tabard.toml`` (read-only at run time) and SQL, written through
:class:`RouteService` (``/api/v1/routes``, ``tabard routes``). :meth:`RouteService.version`
grows on every stored change so a gateway replica can cache the table and re-read it only
when the number moved. Design: ``docs/design/routes-and-approvals.md``.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from tabard.clock import Clock
from tabard.errors import Conflict, Invalid, NotFound

if TYPE_CHECKING:  # the audit log is imported when a change is recorded (CLI start-up)
    from tabard.audit import AuditLog

__all__ = [
    "CREDENTIAL_KINDS",
    "DLP_ACTIONS",
    "MAX_APPROVAL_TIMEOUT",
    "MAX_TIMEOUT",
    "CredentialSpec",
    "DlpProfileNames",
    "InvalidRouteError",
    "Route",
    "RouteExistsError",
    "RouteNotFoundError",
    "RouteProtocol",
    "RouteReadOnlyError",
    "RouteService",
    "RouteStore",
    "SecretNames",
    "check_route_name",
    "route_from_mapping",
    "validate_route",
]

CREDENTIAL_KINDS = frozenset({"none", "static", "client_credentials", "downstream_jwt"})
DLP_ACTIONS = frozenset({"redact", "block"})
MAX_TIMEOUT = 600.0
MAX_APPROVAL_TIMEOUT = 86400.0
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


class InvalidRouteError(Invalid):
    code = "invalid_route"


class RouteNotFoundError(NotFound):
    code = "route_not_found"


class RouteExistsError(Conflict):
    code = "route_exists"


class RouteReadOnlyError(Conflict):
    """The route is defined in ``tabard.toml``; change it there."""

    code = "route_read_only"


class RouteProtocol(StrEnum):
    MCP = "mcp"
    A2A = "a2a"
    HTTP = "http"


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialSpec:
    """Which credential the gateway injects upstream. ``kind``: ``none``; ``static`` (the
    vault secret ``secret`` as ``<header>: <scheme> <value>``); ``client_credentials``
    (OAuth 2 against ``token_url``, client secret in ``secret``, client id in
    ``client_id_secret``, scope picked by ``scopes``: operation-token glob → upstream
    scope); ``downstream_jwt`` (a tabard-minted JWT for ``audience``, default the upstream
    URL)."""

    kind: str = "none"
    secret: str | None = None
    header: str = "Authorization"
    scheme: str | None = "Bearer"
    token_url: str | None = None
    scopes: Mapping[str, str] = field(default_factory=dict)
    audience: str | None = None
    client_id_secret: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "secret": self.secret, "header": self.header,
                "scheme": self.scheme, "token_url": self.token_url,
                "scopes": dict(self.scopes), "audience": self.audience,
                "client_id_secret": self.client_id_secret}


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    name: str
    protocol: RouteProtocol
    upstream: str
    audience: str | None = None
    credential: CredentialSpec = CredentialSpec()
    dlp_profile: str | None = None
    dlp_action: str = "redact"
    timeout: float = 30.0
    strip_headers: tuple[str, ...] = ()
    approval_timeout: float = 120.0
    created_at: datetime
    updated_at: datetime
    source: str = "api"
    """``api`` (stored in SQL) or ``config`` (``[[gateway.routes]]``, read-only)."""
    user_token_issuers: tuple[str, ...] = ()
    """Dual-token mode: the issuers (trusted by the authorization server) whose users' own
    tokens this route accepts; none by default (only tabard's delegated tokens)."""
    push_urls: tuple[str, ...] = ()
    """A2A routes: the https URL prefixes a push-notification webhook must start with;
    none by default (push-notification configs are refused)."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": self.protocol.value, "upstream": self.upstream,
                "audience": self.audience, "credential": self.credential.to_json(),
                "dlp_profile": self.dlp_profile, "dlp_action": self.dlp_action,
                "timeout": self.timeout, "strip_headers": list(self.strip_headers),
                "approval_timeout": self.approval_timeout, "source": self.source,
                "user_token_issuers": list(self.user_token_issuers),
                "push_urls": list(self.push_urls),
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


class RouteStore(Protocol):
    """Stored routes and a change counter, thread-safe and shared by replicas."""

    def get(self, name: str) -> Route | None: ...

    def list(self) -> Sequence[Route]:
        """By name."""
        ...

    def add(self, route: Route) -> None:
        """:class:`RouteExistsError` if the name is taken; bumps the version."""
        ...

    def replace(self, route: Route) -> bool:
        """Overwrite; ``False`` when absent. Bumps the version."""
        ...

    def remove(self, name: str) -> bool:
        """``False`` when absent. Bumps the version."""
        ...

    def version(self) -> int: ...


class SecretNames(Protocol):
    """Whether the vault holds a secret of this name (filled from :mod:`tabard.vault`)."""

    def secret_exists(self, name: str) -> bool: ...


class DlpProfileNames(Protocol):
    """The DLP profiles the gateway knows (filled from :mod:`tabard.discovery.dlp`)."""

    def dlp_profiles(self) -> Iterable[str]: ...


def check_route_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRouteError(
            f"route name {name!r} must be 1-63 characters of a-z, 0-9 and '-', starting and "
            "ending with a letter or digit")
    return name


def _check_url(value: str, what: str) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidRouteError(f"{what} must be an http(s) URL of at most 2048 characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidRouteError(f"{what} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRouteError(f"{what} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidRouteError(
            f"{what} must not carry credentials; store them in the vault and name the secret")
    if parts.fragment:
        raise InvalidRouteError(f"{what} must not have a #fragment")
    return value


def _check_push_prefix(value: str) -> str:
    """A webhook URL prefix: https, a host, no credentials, query nor fragment."""
    _check_url(value, "push_urls entry")
    parts = urlsplit(value)
    if parts.scheme != "https":
        raise InvalidRouteError(f"push_urls entry {value!r} must be an https:// URL")
    if parts.query or value.endswith("?"):
        raise InvalidRouteError(f"push_urls entry {value!r} must not have a query")
    return value


def _check_strings(values: Sequence[str], what: str, limit: int) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) and 0 < len(v) <= 2048
                                          for v in values):
        raise InvalidRouteError(f"{what} must be a list of strings of 1-2048 characters")
    if len(values) > limit:
        raise InvalidRouteError(f"at most {limit} {what}")
    return tuple(dict.fromkeys(values))


def _check_header(value: str, what: str) -> str:
    if not isinstance(value, str) or not _HEADER.match(value):
        raise InvalidRouteError(f"{what} {value!r} is not a valid HTTP header name")
    return value


def _check_number(value: float, what: str, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRouteError(f"{what} must be a number of seconds")
    if not 0 < float(value) <= limit:
        raise InvalidRouteError(f"{what} must be above 0 and at most {limit:g} seconds")
    return float(value)


def _check_credential(spec: CredentialSpec, secrets: SecretNames | None) -> CredentialSpec:
    if spec.kind not in CREDENTIAL_KINDS:
        raise InvalidRouteError(f"credential kind {spec.kind!r} is not one of "
                                f"{', '.join(sorted(CREDENTIAL_KINDS))}")
    _check_header(spec.header, "credential header")
    if spec.scheme is not None and spec.scheme != "" and not _HEADER.match(spec.scheme):
        raise InvalidRouteError(f"credential scheme {spec.scheme!r} is not a single token")
    if spec.kind == "static" and not spec.secret:
        raise InvalidRouteError("a static credential names the vault secret it injects")
    if spec.kind == "client_credentials" and not (
            spec.secret and spec.client_id_secret and spec.token_url):
        raise InvalidRouteError("a client_credentials credential needs token_url, secret "
                                "(the client secret) and client_id_secret")
    if spec.token_url is not None:
        _check_url(spec.token_url, "token_url")
    for glob, scope in spec.scopes.items():
        if not isinstance(glob, str) or not glob.strip() or not isinstance(scope, str) \
                or not scope.strip():
            raise InvalidRouteError("each scope mapping is GLOB=UPSTREAM_SCOPE, both non-empty")
    if spec.kind in ("none", "downstream_jwt") and (spec.secret or spec.client_id_secret):
        raise InvalidRouteError(f"a {spec.kind} credential takes no secret")
    if secrets is not None:
        for name in (spec.secret, spec.client_id_secret):
            if name and not secrets.secret_exists(name):
                raise InvalidRouteError(f"secret {name!r} is not in the vault")
    return spec


def validate_route(route: Route, *, secrets: SecretNames | None = None,
                   dlp_profiles: DlpProfileNames | None = None) -> Route:
    """``route`` checked against every rule; raises :class:`InvalidRouteError`."""
    check_route_name(route.name)
    try:
        protocol = RouteProtocol(route.protocol)
    except ValueError:
        raise InvalidRouteError(
            f"protocol {route.protocol!r} is not one of mcp, a2a, http") from None
    _check_url(route.upstream, "upstream")
    if route.audience is not None and not (0 < len(route.audience) <= 2048):
        raise InvalidRouteError("audience must be 1-2048 characters")
    _check_credential(route.credential, secrets)
    if route.dlp_action not in DLP_ACTIONS:
        raise InvalidRouteError("dlp_action must be redact or block")
    if route.dlp_profile is not None and dlp_profiles is not None \
            and route.dlp_profile not in set(dlp_profiles.dlp_profiles()):
        raise InvalidRouteError(
            f"DLP profile {route.dlp_profile!r} is not one of "
            f"{', '.join(sorted(dlp_profiles.dlp_profiles()))}")
    strip = tuple(_check_header(h, "strip header") for h in route.strip_headers)
    if len(strip) > 32:
        raise InvalidRouteError("at most 32 strip headers")
    issuers = _check_strings(route.user_token_issuers, "user_token_issuers", 16)
    push = tuple(_check_push_prefix(u)
                 for u in _check_strings(route.push_urls, "push_urls", 32))
    if push and protocol is not RouteProtocol.A2A:
        raise InvalidRouteError("push_urls apply to a2a routes only")
    return replace(route, protocol=protocol, strip_headers=strip,
                   user_token_issuers=issuers, push_urls=push,
                   timeout=_check_number(route.timeout, "timeout", MAX_TIMEOUT),
                   approval_timeout=_check_number(route.approval_timeout, "approval_timeout",
                                                  MAX_APPROVAL_TIMEOUT))


def route_from_mapping(data: Mapping[str, Any], *, at: datetime,
                       source: str = "api") -> Route:
    """A route from plain data (configuration, REST body), not yet validated."""
    cred = data.get("credential") or {}
    if not isinstance(cred, Mapping):
        raise InvalidRouteError("credential must be a table/object")
    known = set(CredentialSpec.__dataclass_fields__)
    unknown = set(cred) - known
    if unknown:
        raise InvalidRouteError(f"unknown credential fields: {', '.join(sorted(unknown))}")
    try:
        spec = CredentialSpec(**{k: v for k, v in cred.items() if v is not None or k in (
            "scheme",)})
        fields = {k: data[k] for k in ("audience", "dlp_profile", "dlp_action", "timeout",
                                       "approval_timeout") if data.get(k) is not None}
        return Route(name=data["name"], protocol=data["protocol"], upstream=data["upstream"],
                     credential=spec, strip_headers=tuple(data.get("strip_headers") or ()),
                     user_token_issuers=tuple(data.get("user_token_issuers") or ()),
                     push_urls=tuple(data.get("push_urls") or ()),
                     created_at=at, updated_at=at, source=source, **fields)
    except KeyError as exc:
        raise InvalidRouteError(f"a route needs {exc.args[0]}") from None
    except TypeError as exc:
        raise InvalidRouteError(f"bad route: {exc}") from None


class RouteService:
    """Routes from configuration (read-only) over routes in SQL (managed here)."""

    def __init__(self, store: RouteStore, clock: Clock, *, configured: Sequence[Route] = (),
                 secrets: SecretNames | None = None,
                 dlp_profiles: DlpProfileNames | None = None,
                 audit: AuditLog | None = None) -> None:
        self._store, self._clock, self._audit = store, clock, audit
        self._secrets, self._dlp = secrets, dlp_profiles
        self._configured: dict[str, Route] = {}
        for route in configured:
            checked = validate_route(replace(route, source="config"), dlp_profiles=dlp_profiles)
            if checked.name in self._configured:
                raise InvalidRouteError(f"route {checked.name!r} is configured twice")
            self._configured[checked.name] = checked

    def get(self, name: str) -> Route:
        route = self._configured.get(name) or self._store.get(name)
        if route is None:
            raise RouteNotFoundError(f"no route named {name!r}")
        return route

    def list(self) -> builtins.list[Route]:
        stored = [r for r in self._store.list() if r.name not in self._configured]
        return sorted([*self._configured.values(), *stored], key=lambda r: r.name)

    def version(self) -> int:
        return self._store.version()

    def create(self, route: Route, *, actor: str) -> Route:
        now = self._clock.now()
        route = validate_route(replace(route, created_at=now, updated_at=now, source="api"),
                               secrets=self._secrets, dlp_profiles=self._dlp)
        if route.name in self._configured:
            raise RouteExistsError(f"route {route.name!r} is defined in the configuration")
        self._store.add(route)
        self._record(actor, "route.create", route)
        return route

    def update(self, route: Route, *, actor: str) -> Route:
        """Replace a stored route (its ``created_at`` kept)."""
        if route.name in self._configured:
            raise RouteReadOnlyError(
                f"route {route.name!r} is defined in the configuration; change it there")
        current = self._store.get(route.name)
        if current is None:
            raise RouteNotFoundError(f"no route named {route.name!r}")
        route = validate_route(
            replace(route, created_at=current.created_at, updated_at=self._clock.now(),
                    source="api"), secrets=self._secrets, dlp_profiles=self._dlp)
        if not self._store.replace(route):
            raise RouteNotFoundError(f"no route named {route.name!r}")
        self._record(actor, "route.update", route)
        return route

    def delete(self, name: str, *, actor: str) -> None:
        if name in self._configured:
            raise RouteReadOnlyError(
                f"route {name!r} is defined in the configuration; remove it there")
        current = self._store.get(name)
        if current is None or not self._store.remove(name):
            raise RouteNotFoundError(f"no route named {name!r}")
        self._record(actor, "route.delete", current)

    def _record(self, actor: str, operation: str, route: Route) -> None:
        if self._audit is None:
            return
        from tabard.audit import AuditEvent, AuditKind, What

        self._audit.append(AuditEvent(
            kind=AuditKind.ADMIN_ACTION, actor=actor,
            what=What(operation=operation, target=f"route:{route.name}"),
            details={"route": route.to_json()}))
