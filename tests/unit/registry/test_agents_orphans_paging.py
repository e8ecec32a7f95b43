"""The orphan sweep reads every watched definition, page after page, on both backends: with
a page of two, five agents (and one leaving, skipped) take three pages and are all swept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tabard.registry import AgentState, FindingKind, OrphanDetector
from tests.fakes.agents import AgentWorld, spec

ADMIN = "admin:ops"
NAMES = ["a-1", "a-2", "a-3", "a-4", "a-5"]


@pytest.fixture
def world(database_url: str) -> Iterator[AgentWorld]:
    w = AgentWorld(database_url)
    try:
        yield w
    finally:
        w.close()


def detector(world: AgentWorld, page_size: int) -> OrphanDetector:
    return OrphanDetector(world.agent_store, world.findings, world.activity, world.directory,
                          world.clock, world.policy, page_size=page_size)


def test_the_sweep_covers_definitions_beyond_one_page(world: AgentWorld) -> None:
    for uid, name in enumerate(NAMES, start=100):
        world.agents.register(spec(name, selectors=[f"unix:uid:{uid}"]), actor=ADMIN)
    world.agents.register(spec("z-gone", selectors=["unix:uid:99"]), actor=ADMIN)
    world.retirement.start("z-gone", actor=ADMIN, reason="replaced")
    assert world.agent_store.get("z-gone").state.leaving  # type: ignore[union-attr]
    world.directory.set_active("carol", False)

    report = detector(world, page_size=2).sweep()

    assert report.agents == len(NAMES) and report.opened == len(NAMES)
    for name in NAMES:
        assert {f.kind for f in world.findings.list(agent=name)} == {
            FindingKind.OWNER_INACTIVE}
    assert world.findings.list(agent="z-gone") == []
    # a page exactly full: the next (empty) page ends the walk
    world.directory.set_active("carol", True)
    again = detector(world, page_size=len(NAMES)).sweep()
    assert again.agents == len(NAMES) and again.resolved == len(NAMES)


def test_page_size_must_be_positive(world: AgentWorld) -> None:
    with pytest.raises(ValueError, match="page_size"):
        detector(world, page_size=0)


def test_keyset_pages_of_the_store(world: AgentWorld) -> None:
    for uid, name in enumerate(NAMES, start=100):
        world.agents.register(spec(name, selectors=[f"unix:uid:{uid}"]), actor=ADMIN,
                              activate=name == "a-3")
    store = world.agent_store
    registered = (AgentState.REGISTERED,)
    assert [a.name for a in store.page(registered, limit=2)] == ["a-1", "a-2"]
    assert [a.name for a in store.page(registered, after="a-2", limit=2)] == ["a-4", "a-5"]
    assert store.page(registered, after="a-5", limit=2) == []
    assert [a.name for a in store.page((AgentState.ACTIVE, AgentState.REGISTERED),
                                       after="a-2", limit=10)] == ["a-3", "a-4", "a-5"]
    assert store.page((), limit=10) == []
    assert store.page(registered, limit=10) == [store.get(n) for n in NAMES if n != "a-3"]
