"""``/.well-known/tabard``: where a node finds the node API and the bundle of this server."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from tabard.server.deps import Services

router = APIRouter(tags=["discovery"])


class Discovery(BaseModel):
    trust_domain: str
    server_url: str | None
    node_api_url: str | None
    bundle_url: str | None


@router.get("/.well-known/tabard", response_model=Discovery,
            summary="Discovery document for nodes and gateways (unauthenticated)")
def discovery(request: Request, services: Services) -> Discovery:
    endpoints = getattr(request.app.state, "endpoints", None)
    server_url = endpoints.server_url if endpoints else None
    return Discovery(
        trust_domain=services.trust_domain.name,
        server_url=server_url,
        node_api_url=endpoints.node_api_url if endpoints else None,
        bundle_url=f"{server_url}/bundle" if server_url else None,
    )
