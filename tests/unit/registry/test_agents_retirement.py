"""Retirement: ordered, idempotent, resumable steps; hooks recorded one by one; the trail's
hash-chain seal; a process that dies mid-step is finished by the next run."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from tabard.registry import (
    AgentPatch,
    AgentState,
    ChangeStatus,
    IllegalTransitionError,
    InstanceQuery,
    InstanceReport,
    NodePrincipal,
    RetirementService,
    SanitizationHook,
    StepName,
    StepStatus,
    parse_selectors,
    trail_digest,
)
from tabard.registry.retirement import TRAIL_DOMAIN
from tabard.store.tables import agent_events
from tests.fakes.agents import AgentWorld, spec

ADMIN = "admin:ops"
HOOKS = [SanitizationHook.parse("wipe"), SanitizationHook.parse("purge"),
         SanitizationHook.parse("https://memory.example/forget")]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AgentWorld]:
    w = AgentWorld(f"sqlite:///{tmp_path / 'tabard.db'}")
    try:
        yield w
    finally:
        w.close()


def ready(world: AgentWorld) -> None:
    agent = world.agents.register(spec(sanitization_hooks=HOOKS), actor=ADMIN, activate=True)
    node = NodePrincipal(world.node.id, world.node.spiffe_id)
    for pid in (10, 11):
        world.instances.register(node, InstanceReport(
            entry_id=agent.entry_id or "", pid=pid, start_time=1.0, uid=1000, gid=1000,
            exe_path="/bin/agent", exe_sha256="ab" * 32,
            selectors=parse_selectors(["unix:uid:1000"])))
    world.agents.update("trading", AgentPatch(add_tools=["orders.cancel"]), actor=ADMIN)
    world.directory.set_active("carol", False)
    world.orphans.user_status_changed("carol", False, False, world.clock.now())


def test_the_six_steps_run_in_order_and_leave_a_sealed_retired_agent(
        world: AgentWorld) -> None:
    ready(world)
    started = world.retirement.start("trading", actor=ADMIN, reason="desk closed")
    assert started.state is AgentState.RETIRING and not started.finished
    assert [s.status for s in started.steps] == [StepStatus.PENDING] * 6
    status = world.retirement.run("trading")
    assert status.finished and status.failed is None
    assert [(s.name, s.status, s.attempts) for s in status.steps] == [
        (name, StepStatus.DONE, 1) for name in StepName]
    revoke, grants, inbound, sanitize, seal, watch = (s.result for s in status.steps)
    assert (revoke["instances"], revoke["instances_retired"]) == (2, 2)
    assert "no OAuth access tokens" in revoke["tokens"]
    assert "x509_svids_valid_until_at_most" in revoke
    assert grants["tools_removed"] == ["orders.place", "quotes.read"]
    assert grants["policy_bindings_removed"] == {"dev": "trading-dev"}
    assert len(grants["pending_changes_cancelled"]) == 1
    assert inbound == {"inbound_blocked": True}
    assert [h["status"] for h in sanitize["hooks"].values()] == ["done"] * 3
    assert world.hooks.runs == [h.label for h in HOOKS]
    assert len(watch["findings_closed"]) == 1

    agent = world.agents.get("trading")
    assert agent.state is AgentState.RETIRED and agent.inbound_blocked
    assert agent.tools == () and agent.policy_bindings == {} and agent.seal == seal["seal"]
    assert all(i.retired_at is not None
               for i in world.instance_store.list(InstanceQuery(agent="trading")))
    assert {c.status for c in world.agents.changes("trading")} == {ChangeStatus.CANCELLED}
    assert world.findings.list(agent="trading") == []
    check = world.retirement.verify_seal("trading")
    assert check.sealed and check.valid and check.events == seal["events"]
    events = world.agents.events("trading")
    assert [e.kind for e in events][-3:] == ["retirement_step", "retirement_step", "retired"]
    assert events[-1].to_state is AgentState.RETIRED
    # the chain is the documented one
    head = hashlib.sha256(TRAIL_DOMAIN + b"trading").digest()
    for event in events[:seal["sealed_through"]]:
        head = hashlib.sha256(head + event.canonical()).digest()
    assert head.hex() == agent.seal == trail_digest("trading", events[:seal["sealed_through"]])

    assert world.retirement.run("trading").finished  # idempotent
    assert world.hooks.runs == [h.label for h in HOOKS]
    with pytest.raises(IllegalTransitionError, match="cannot retire agent 'trading': it is "
                                                     "retired"):
        world.retirement.start("trading", actor=ADMIN)
    with pytest.raises(IllegalTransitionError):
        world.agents.update("trading", AgentPatch(purpose="x"), actor=ADMIN)


def test_a_failing_hook_fails_its_step_and_only_it_is_retried(world: AgentWorld) -> None:
    ready(world)
    world.hooks.failing = {"purge"}
    world.retirement.start("trading", actor=ADMIN)
    status = world.retirement.run("trading")
    failed = status.failed
    assert failed is not None and failed.name is StepName.SANITIZE_MEMORY
    assert failed.error == "hook command:purge failed: exit 3: disk busy"
    assert [s.status for s in status.steps] == [StepStatus.DONE] * 3 + [
        StepStatus.FAILED, StepStatus.PENDING, StepStatus.PENDING]
    hooks = failed.result["hooks"]
    assert hooks["command:wipe"]["status"] == "done"
    assert hooks["command:purge"]["status"] == "failed"
    assert "https://memory.example/forget" not in str(hooks)
    assert world.agents.get("trading").state is AgentState.RETIRING

    world.hooks.failing = set()
    status = world.retirement.run("trading")
    assert status.finished
    assert world.hooks.runs == ["command:wipe", "command:purge", "command:purge",
                                "webhook:https://memory.example/forget"]
    steps = {s.name: s for s in status.steps}
    assert steps[StepName.SANITIZE_MEMORY].attempts == 2
    assert steps[StepName.SANITIZE_MEMORY].result["hooks"]["command:purge"]["attempts"] == 2
    assert steps[StepName.REVOKE_CREDENTIALS].attempts == 1


class ProcessDied(BaseException):
    """Stands for kill -9: nothing after it runs in this process."""


def test_a_run_killed_mid_step_is_finished_by_the_next_process(world: AgentWorld) -> None:
    ready(world)

    died: list[str] = []

    def die_on_purge(hook: SanitizationHook) -> None:
        if hook.target == "purge" and not died:
            died.append(hook.target)
            raise ProcessDied

    world.hooks.before_run = die_on_purge
    world.retirement.start("trading", actor=ADMIN)
    with pytest.raises(ProcessDied):
        world.retirement.run("trading")
    steps = {s.name: s for s in world.agent_store.steps("trading")}
    assert steps[StepName.SANITIZE_MEMORY].status is StepStatus.RUNNING
    events_before = len(world.agents.events("trading"))

    restarted = RetirementService(world.agent_store, world.activity, world.entry_store,
                                  world.hooks, world.clock, world.findings)
    assert restarted.retiring() == ["trading"]
    [status] = restarted.resume_all()
    assert status.finished
    # wipe finished before the crash and is not repeated; purge was running and runs again
    assert world.hooks.runs == ["command:wipe", "command:purge",
                                "webhook:https://memory.example/forget"]
    kinds = [e.kind for e in world.agents.events("trading")[events_before:]]
    assert kinds == ["retirement_step", "retirement_step", "retirement_step", "retired"]
    assert restarted.resume_all() == []


def test_one_run_at_a_time_per_agent_in_a_process(world: AgentWorld) -> None:
    ready(world)
    nested: list[bool] = []

    def run_again(hook: SanitizationHook) -> None:
        if hook.target == "wipe":
            nested.append(world.retirement.run("trading").finished)

    world.hooks.before_run = run_again
    world.retirement.start("trading", actor=ADMIN)
    assert world.retirement.run("trading").finished
    assert nested == [False]  # the nested call saw the run in progress and returned
    assert world.hooks.runs.count("command:wipe") == 1


def test_run_needs_a_started_retirement_and_start_is_idempotent(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN)  # registered agents can be retired too
    with pytest.raises(IllegalTransitionError, match="start the retirement first"):
        world.retirement.run("trading")
    world.retirement.start("trading", actor=ADMIN)
    world.retirement.start("trading", actor=ADMIN)
    assert [e.kind for e in world.agents.events("trading")].count("retirement_started") == 1
    assert world.retirement.run("trading").finished


def test_a_tampered_trail_breaks_the_seal(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN, activate=True)
    assert not world.retirement.verify_seal("trading").sealed
    world.retirement.start("trading", actor=ADMIN)
    world.retirement.run("trading")
    assert world.retirement.verify_seal("trading").valid
    with world.db.begin() as c:
        c.execute(update(agent_events).where(agent_events.c.agent == "trading",
                                             agent_events.c.seq == 1)
                  .values(actor="admin:someone-else"))
    check = world.retirement.verify_seal("trading")
    assert check.sealed and not check.valid and check.recomputed != check.seal
