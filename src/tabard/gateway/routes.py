"""Routes from the configuration file (``[[gateway.routes]]``): a :class:`RouteSource` whose
version never changes. The composition root puts it in front of the routes service
(``/api/v1/routes``) with :class:`LayeredRoutes`: configured names win."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tabard.errors import NotFound
from tabard.gateway.ports import RouteSource, RouteView

__all__ = ["ConfiguredCredential", "ConfiguredRoute", "ConfiguredRoutes", "LayeredRoutes"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfiguredCredential:
    kind: str = "none"
    secret: str | None = None
    header: str = "Authorization"
    scheme: str | None = "Bearer"
    token_url: str | None = None
    scopes: Mapping[str, str] = field(default_factory=dict)
    audience: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfiguredRoute:
    name: str
    protocol: str
    upstream: str
    audience: str | None = None
    credential: ConfiguredCredential = ConfiguredCredential()
    dlp_profile: str | None = None
    dlp_action: str = "redact"
    timeout: float = 30.0
    strip_headers: tuple[str, ...] = ()
    approval_timeout: float = 120.0


class ConfiguredRoutes:
    def __init__(self, routes: Iterable[RouteView]) -> None:
        self._routes = {r.name: r for r in routes}

    def get(self, name: str) -> RouteView:
        route = self._routes.get(name)
        if route is None:
            raise NotFound(f"no route named {name!r}", code="unknown_route")
        return route

    def version(self) -> int:
        return 0


class LayeredRoutes:
    """The first source that knows a name answers; the version changes when any does."""

    def __init__(self, *sources: RouteSource) -> None:
        self._sources = sources

    def get(self, name: str) -> RouteView:
        for source in self._sources[:-1]:
            try:
                return source.get(name)
            except NotFound:
                continue
        return self._sources[-1].get(name)

    def version(self) -> int:
        return sum(s.version() for s in self._sources)
