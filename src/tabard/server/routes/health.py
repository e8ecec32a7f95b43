"""Liveness, readiness and metrics: unauthenticated, as orchestrators expect."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tabard.server.deps import Services
from tabard.server.problems import problem_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves requests")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: storage and the authority are usable")
def readyz(services: Services) -> JSONResponse:
    if not services.database_ready():
        return problem_response(503, "not_ready", "database is not reachable")
    return JSONResponse({"status": "ready", "trust_domain": services.trust_domain.name})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
