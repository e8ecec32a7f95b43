"""The FastAPI application of ``tabard server``: wiring of routes, errors and metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from tabard import __version__
from tabard.server.audit import record_admin_outcome
from tabard.server.deps import ServerServices
from tabard.server.metrics import ServerMetrics
from tabard.server.problems import install_problem_handlers, problem_response
from tabard.server.routes import (
    admin_tokens,
    agents,
    authority,
    bundle,
    discovery,
    entries,
    health,
    instances,
    inventory,
    join_tokens,
    node_api,
    nodes,
    oauth,
    policies,
    scim,
)
from tabard.server.routes import audit as audit_routes
from tabard.server.routes import gateway as gateway_routes
from tabard.server.routes import signals as signal_routes
from tabard.server.routes import vault as vault_routes

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 1 << 20


def create_app(services: ServerServices) -> FastAPI:
    app = FastAPI(
        title="tabard server",
        version=__version__,
        description="Control plane of tabard: trust-domain authority, registry, policy, audit. "
        "Every /api/v1 endpoint needs `Authorization: Bearer <admin token>`.",
    )
    app.state.services = services
    app.state.metrics = ServerMetrics()
    install_problem_handlers(app)

    @app.middleware("http")
    async def _observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is None and "transfer-encoding" in request.headers:
            return problem_response(411, "length_required",
                                    "request bodies must carry a Content-Length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return problem_response(413, "payload_too_large",
                                    f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics: ServerMetrics = request.app.state.metrics
        metrics.requests.labels(request.method, template, str(response.status_code)).inc()
        metrics.latency.labels(template).observe(time.perf_counter() - start)
        if response.status_code == 401:
            metrics.auth_failures.inc()
        intent = getattr(request.state, "audit_intent", None)
        if intent is not None:
            await record_admin_outcome(request.app.state.services, intent,
                                       response.status_code)
        return response

    for module in (health, bundle, discovery, authority, admin_tokens, entries, join_tokens,
                   nodes, instances, node_api, inventory, scim):
        app.include_router(module.router)
    app.include_router(agents.router)
    app.include_router(oauth.router)
    app.include_router(policies.router)
    app.include_router(vault_routes.router)
    app.include_router(vault_routes.leases_router)
    app.include_router(audit_routes.router)
    app.include_router(gateway_routes.router)
    app.include_router(gateway_routes.approvals_router)
    app.include_router(signal_routes.router)
    return app
