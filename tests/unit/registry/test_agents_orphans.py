"""Orphan detection: the directory's status events flag at once, the sweep finds the rest,
and the policy's action (flag, or suspend after a grace period) is applied."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tabard.registry import (
    AgentState,
    FindingKind,
    InstanceReport,
    LifecyclePolicy,
    NodePrincipal,
    parse_selectors,
)
from tabard.registry.orphans import SWEEP_ACTOR
from tests.fakes.agents import AgentWorld, spec

ADMIN = "admin:ops"


def make(tmp_path: Path, **policy: object) -> AgentWorld:
    return AgentWorld(f"sqlite:///{tmp_path / 'tabard.db'}",
                      policy=LifecyclePolicy(**policy))  # type: ignore[arg-type]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AgentWorld]:
    w = make(tmp_path)
    try:
        yield w
    finally:
        w.close()


def kinds(world: AgentWorld, name: str = "trading") -> set[FindingKind]:
    return {f.kind for f in world.findings.list(agent=name)}


def test_the_directory_flags_at_once_and_clears_on_reactivation(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN, activate=True)
    world.agents.register(spec("quotes", owner="dave", selectors=["unix:uid:2"]), actor=ADMIN)
    at = world.clock.now()
    world.orphans.user_status_changed("Carol", False, False, at)
    assert kinds(world) == {FindingKind.OWNER_INACTIVE} and kinds(world, "quotes") == set()
    world.orphans.user_status_changed("carol", False, False, at)  # again: still one finding
    assert len(world.findings.list(agent="trading")) == 1
    flagged = world.agents.events("trading")[-1]
    assert (flagged.kind, flagged.actor) == ("orphan_flagged", "tabard:directory")
    assert flagged.details["finding"] == "owner_inactive"
    [orphan] = world.orphans.orphans()
    assert orphan.agent.name == "trading"

    world.orphans.user_status_changed("carol", True, False, at)
    assert kinds(world) == set() and world.orphans.orphans() == []
    assert world.agents.events("trading")[-1].kind == "finding_resolved"

    world.orphans.user_status_changed("dave", False, True, at)
    assert kinds(world, "quotes") == {FindingKind.OWNER_DELETED}
    world.directory.remove("dave")
    world.orphans.sweep()  # the sweep keeps "deleted" rather than turning it into "missing"
    assert kinds(world, "quotes") == {FindingKind.OWNER_DELETED}


def test_retired_agents_are_not_watched(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN, activate=True)
    world.retirement.start("trading", actor=ADMIN)
    world.retirement.run("trading")
    world.orphans.user_status_changed("carol", False, True, world.clock.now())
    world.directory.remove("carol")
    assert world.orphans.sweep().agents == 0
    assert kinds(world) == set()


def test_the_sweep_finds_missing_inactive_and_non_person_owners(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN, activate=True)
    world.agents.register(spec("quotes", owner="dave", selectors=["unix:uid:2"]), actor=ADMIN)
    world.directory.remove("carol")
    world.directory.add("dave", is_person=False)  # became a shared mailbox
    report = world.orphans.sweep()
    assert (report.agents, report.opened) == (2, 2)
    assert kinds(world) == {FindingKind.OWNER_MISSING}
    assert kinds(world, "quotes") == {FindingKind.OWNER_MISSING}
    assert world.orphans.sweep().opened == 0  # nothing new
    world.directory.add("carol", active=False)
    world.orphans.sweep()
    assert kinds(world) == {FindingKind.OWNER_INACTIVE}
    world.directory.set_active("carol", True)
    assert world.orphans.sweep().resolved >= 1 and kinds(world) == set()
    lookups = world.directory.lookups
    world.orphans.sweep()
    assert world.directory.lookups - lookups == 2  # one lookup per distinct owner


def test_a_missed_transfer_deadline_narrows_until_the_new_owner_attests(
        world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN, activate=True)
    world.agents.transfer("trading", "dave", actor=ADMIN)
    world.clock.advance(world.policy.transfer_deadline - timedelta(seconds=1))
    assert world.orphans.sweep().narrowed == 0 and not world.agents.get("trading").read_only
    world.clock.advance(timedelta(seconds=1))
    report = world.orphans.sweep()
    assert report.narrowed == 1 and report.opened == 1
    agent = world.agents.get("trading")
    assert agent.read_only and agent.state is AgentState.ACTIVE
    assert kinds(world) == {FindingKind.ATTESTATION_OVERDUE}
    narrowed = next(e for e in world.agents.events("trading") if e.kind == "narrowed")
    assert narrowed.actor == SWEEP_ACTOR
    assert world.orphans.sweep().narrowed == 0  # once
    attested = world.agents.attest("trading", "dave", actor=ADMIN)
    assert not attested.read_only and kinds(world) == set()
    assert [e.kind for e in world.agents.events("trading")][-3:] == [
        "attested", "widened", "finding_resolved"]


def test_periodic_attestation_overdue_is_flagged_not_narrowed(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN, activate=True)
    interval = world.policy.attestation_interval
    assert interval is not None
    world.agents.attest("trading", "carol", actor=ADMIN)  # keeps the instance clock fresh too
    world.clock.advance(interval)
    world.orphans.sweep()
    assert FindingKind.ATTESTATION_OVERDUE in kinds(world)
    assert not world.agents.get("trading").read_only


def test_agents_without_a_recent_instance_are_flagged(world: AgentWorld) -> None:
    agent = world.agents.register(spec(), actor=ADMIN, activate=True)
    world.agents.register(spec("idle", selectors=["unix:uid:9"]), actor=ADMIN)  # registered
    world.clock.advance(world.policy.stale_after - timedelta(minutes=1))
    world.instances.register(NodePrincipal(world.node.id, world.node.spiffe_id), InstanceReport(
        entry_id=agent.entry_id or "", pid=7, start_time=1.0, uid=1000, gid=1000,
        exe_path="/bin/agent", exe_sha256="ab" * 32, selectors=parse_selectors(["unix:uid:1000"])))
    world.clock.advance(timedelta(minutes=2))
    world.orphans.sweep()
    assert kinds(world) == set()  # seen a minute ago
    world.clock.advance(world.policy.stale_after)
    world.orphans.sweep()
    assert kinds(world) == {FindingKind.NO_RECENT_INSTANCE}
    assert kinds(world, "idle") == set()  # never active: nothing is expected to run
    [finding] = world.findings.list(agent="trading")
    assert "no instance seen since" in finding.detail


def test_policy_suspend_acts_after_the_grace_period_once(tmp_path: Path) -> None:
    world = make(tmp_path, orphan_action="suspend", orphan_grace=timedelta(days=1))
    try:
        world.agents.register(spec(), actor=ADMIN, activate=True)
        world.directory.set_active("carol", False)
        world.orphans.user_status_changed("carol", False, False, world.clock.now())
        [finding] = world.findings.list()
        assert finding.action == "suspend"
        world.clock.advance(timedelta(hours=23))
        assert world.orphans.sweep().suspended == 0
        world.clock.advance(timedelta(hours=1))
        assert world.orphans.sweep().suspended == 1
        agent = world.agents.get("trading")
        assert agent.state is AgentState.SUSPENDED
        event = world.agents.events("trading")[-1]
        assert (event.kind, event.actor, event.to_state) == ("suspended", SWEEP_ACTOR,
                                                            AgentState.SUSPENDED)
        world.agents.resume("trading", actor=ADMIN, reason="owner back next week")
        world.clock.advance(timedelta(days=2))
        assert world.orphans.sweep().suspended == 0  # acted once per finding
        assert world.agents.get("trading").state is AgentState.ACTIVE
    finally:
        world.close()


def test_policy_values_are_checked() -> None:
    with pytest.raises(Exception, match="orphan_action"):
        LifecyclePolicy(orphan_action="delete")
    with pytest.raises(Exception, match="orphan_grace"):
        LifecyclePolicy(orphan_grace=timedelta(0))
