"""Agent instances (admin): every process that held an instance identity, with evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from tabard.registry import AgentInstance, InstanceQuery
from tabard.server.deps import Admin, Services

router = APIRouter(prefix="/api/v1/instances", tags=["registry"])


class InstanceView(BaseModel):
    id: str
    spiffe_id: str
    agent: str | None
    node_id: str
    entry_id: str
    pid: int
    start_time: float
    uid: int
    gid: int
    exe_path: str
    exe_sha256: str
    selectors: list[str]
    parent_instance_id: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    retired_at: datetime | None

    @classmethod
    def of(cls, i: AgentInstance) -> InstanceView:
        return cls(
            id=i.id, spiffe_id=str(i.spiffe_id), agent=i.agent, node_id=i.node_id,
            entry_id=i.entry_id, pid=i.pid, start_time=i.start_time, uid=i.uid, gid=i.gid,
            exe_path=i.exe_path, exe_sha256=i.exe_sha256,
            selectors=[str(s) for s in i.selectors], parent_instance_id=i.parent_instance_id,
            first_seen_at=i.first_seen_at, last_seen_at=i.last_seen_at,
            retired_at=i.retired_at,
        )


@router.get("", response_model=list[InstanceView],
            summary="List agent instances, newest first")
def list_instances(
    services: Services,
    admin: Admin,
    agent: Annotated[str | None, Query(max_length=255,
                                       description="Agent name: the segment after /agent/")
                     ] = None,
    node_id: Annotated[str | None, Query(max_length=64)] = None,
    entry_id: Annotated[str | None, Query(max_length=64)] = None,
    spiffe_id: Annotated[str | None, Query(
        max_length=2048, description="The instance holding this SPIFFE ID (at most one)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[InstanceView]:
    if spiffe_id is not None:
        found = services.instances.find(spiffe_id)
        wanted = (found is not None and agent in (None, found.agent)
                  and node_id in (None, found.node_id) and entry_id in (None, found.entry_id))
        return [InstanceView.of(found)] if wanted and found is not None else []
    query = InstanceQuery(agent=agent, node_id=node_id, entry_id=entry_id, limit=limit)
    return [InstanceView.of(i) for i in services.instances.list(query)]


@router.get("/{instance_id}", response_model=InstanceView, summary="Show an agent instance")
def get_instance(instance_id: str, services: Services, admin: Admin) -> InstanceView:
    return InstanceView.of(services.instances.get(instance_id))
