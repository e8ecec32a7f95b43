"""Nodes (admin): attested hosts; a ban takes effect on the node's next call."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from tabard.registry import NodeRecord
from tabard.server.deps import Admin, Services

router = APIRouter(prefix="/api/v1/nodes", tags=["registry"])


class NodeView(BaseModel):
    id: str
    spiffe_id: str
    attestor: str
    selectors: list[str]
    attested_at: datetime
    svid_expires_at: datetime | None
    banned: bool
    banned_at: datetime | None

    @classmethod
    def of(cls, n: NodeRecord) -> NodeView:
        return cls(id=n.id, spiffe_id=str(n.spiffe_id), attestor=n.attestor,
                   selectors=[str(s) for s in n.selectors], attested_at=n.attested_at,
                   svid_expires_at=n.svid_expires_at, banned=n.banned, banned_at=n.banned_at)


@router.get("", response_model=list[NodeView], summary="List nodes")
def list_nodes(services: Services, admin: Admin) -> list[NodeView]:
    return [NodeView.of(n) for n in services.nodes.list()]


@router.get("/{node_id}", response_model=NodeView, summary="Show a node")
def get_node(node_id: str, services: Services, admin: Admin) -> NodeView:
    return NodeView.of(services.nodes.get(node_id))


@router.post("/{node_id}/ban", response_model=NodeView,
             summary="Ban a node: its SVID stops working at once")
def ban_node(node_id: str, services: Services, admin: Admin) -> NodeView:
    return NodeView.of(services.nodes.ban(node_id))
