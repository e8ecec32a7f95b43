"""``InstanceService.find``: the instance that holds a SPIFFE ID, on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tabard.registry import InstanceReport, NodePrincipal, new_ulid, parse_selectors
from tabard.spiffe import SpiffeId, SpiffeIdError
from tests.fakes.agents import T0, AgentWorld, spec


@pytest.fixture
def world(database_url: str) -> Iterator[AgentWorld]:
    w = AgentWorld(database_url)
    try:
        yield w
    finally:
        w.close()


def test_find_by_spiffe_id(world: AgentWorld) -> None:
    agent = world.agents.register(spec(), actor="admin:ops", activate=True)
    node = NodePrincipal(world.node.id, world.node.spiffe_id)
    registered = world.instances.register(node, InstanceReport(
        entry_id=agent.entry_id or "", pid=7, start_time=1.0, uid=1000, gid=1000,
        exe_path="/bin/agent", exe_sha256="ab" * 32,
        selectors=parse_selectors(["unix:uid:1000"]))).instance
    assert world.instances.find(registered.spiffe_id) == registered
    assert world.instances.find(str(registered.spiffe_id)) == registered
    unknown = str(registered.spiffe_id).replace(registered.id, new_ulid(T0))
    assert world.instances.find(unknown) is None
    assert world.instances.find(SpiffeId.parse("spiffe://example.org/agent/trading")) is None
    with pytest.raises(SpiffeIdError):
        world.instances.find("not a spiffe id")
