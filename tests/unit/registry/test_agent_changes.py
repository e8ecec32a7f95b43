"""``ObservedAgentStore`` tells its listeners about every write, whichever service made it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tabard.registry import AgentService, ObservedAgentStore
from tests.fakes.agents import TD, AgentWorld, spec


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AgentWorld]:
    world = AgentWorld(f"sqlite:///{tmp_path / 'agents.db'}")
    try:
        yield world
    finally:
        world.close()


def test_listeners_hear_every_write(world: AgentWorld) -> None:
    observed = ObservedAgentStore(world.agent_store)
    heard: list[str] = []
    observed.subscribe(heard.append)
    observed.subscribe(lambda name: 1 / 0)  # a failing listener is logged, not raised
    agents = AgentService(observed, world.findings, world.instance_store, world.residual,
                          world.directory, world.entries, world.node_store, world.hooks, TD,
                          world.clock, world.policy)
    agents.register(spec(), actor="admin:test", activate=True)
    writes = len(heard)
    assert writes >= 2 and set(heard) == {"trading"}
    agents.suspend("trading", actor="admin:test")
    assert len(heard) == writes + 1
    assert observed.get("trading") == world.agent_store.get("trading")
    assert [e.kind for e in observed.events("trading")][-1] == "suspended"
