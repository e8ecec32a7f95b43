"""The agent ports (AgentStore, FindingStore, AgentActivity, ResidualUseStore) on SQLite and
PostgreSQL, and the tables of ``tables.py`` against migration 0003."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tabard.registry import (
    AgentChangedError,
    AgentDefinition,
    AgentExistsError,
    AgentInstance,
    AgentNotFoundError,
    AgentQuery,
    AgentState,
    ChangeKind,
    ChangeStatus,
    Delegation,
    EventDraft,
    Finding,
    FindingKind,
    IdentityUse,
    ModelRef,
    PendingChange,
    RetirementStep,
    SanitizationHook,
    StepName,
    StepStatus,
    Tier,
    agent_checksum,
    new_ulid,
    parse_selectors,
)
from tabard.spiffe import SpiffeId
from tabard.store import (
    Database,
    SqlAgentActivity,
    SqlAgentStore,
    SqlFindingStore,
    SqlInstanceStore,
    SqlResidualUseStore,
)
from tabard.store.tables import metadata

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
AGENT_TABLES = {"agents", "agent_events", "agent_changes", "agent_findings",
                "agent_retirement_steps", "agent_residual_use"}


@dataclass
class Stores:
    db: Database
    agents: SqlAgentStore
    findings: SqlFindingStore
    activity: SqlAgentActivity
    residual: SqlResidualUseStore
    instances: SqlInstanceStore


@pytest.fixture
def stores(database_url: str) -> Iterator[Stores]:
    db = Database(database_url)
    db.migrate()
    try:
        yield Stores(db, SqlAgentStore(db), SqlFindingStore(db), SqlAgentActivity(db),
                     SqlResidualUseStore(db), SqlInstanceStore(db))
    finally:
        db.dispose()


def definition(name: str = "trading", **changes: object) -> AgentDefinition:
    values: dict[str, object] = {
        "name": name, "owner": "carol", "purpose": "trades", "model": ModelRef("a", "b", "1"),
        "hosting": "k8s", "tier": Tier.DEV, "tools": ("a", "b"),
        "image_digest": "sha256:" + "ab" * 32, "system_prompt_digest": None,
        "config": {"nested": {"x": [1, 2.5, None, True]}},
        "checksum": agent_checksum(None, ("a", "b"), None),
        "policy_bindings": {"dev": "p-dev"}, "delegation": Delegation.HYBRID,
        "entry_id": None, "sanitization_hooks": (SanitizationHook.parse("wipe"),),
        "state": AgentState.REGISTERED, "state_changed_at": T0, "created_at": T0,
        "updated_at": T0, **changes,
    }
    return AgentDefinition(**values)  # type: ignore[arg-type]


def event(kind: str, at: datetime = T0, **details: object) -> EventDraft:
    return EventDraft(kind=kind, actor="admin:ops", reason="why", at=at, details=dict(details))


def test_tables_match_the_migration(stores: Stores) -> None:
    with stores.db.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), metadata)
    ours = [d for d in diffs if any(t in repr(d) for t in AGENT_TABLES)]
    assert ours == []


def test_add_get_list_and_a_name_is_taken_forever(stores: Stores) -> None:
    stored = stores.agents.add(definition(attestation_due_at=T0 + timedelta(days=1)),
                               [event("registered")])
    assert stored == definition(attestation_due_at=T0 + timedelta(days=1))
    assert stored.version == 1
    with pytest.raises(AgentExistsError):
        stores.agents.add(definition(), [])
    stores.agents.add(definition("alpha", owner="Dave", state=AgentState.ACTIVE), [])
    assert [a.name for a in stores.agents.list(AgentQuery())] == ["alpha", "trading"]
    assert [a.name for a in stores.agents.list(AgentQuery(owner="dave"))] == ["alpha"]
    assert [a.name for a in stores.agents.list(AgentQuery(state=AgentState.ACTIVE))] == ["alpha"]
    assert [a.name for a in stores.agents.list(AgentQuery(
        states=(AgentState.REGISTERED, AgentState.RETIRED)))] == ["trading"]
    assert stores.agents.states(["alpha", "trading", "nobody"]) == {
        "alpha": AgentState.ACTIVE, "trading": AgentState.REGISTERED}
    assert stores.agents.get("nobody") is None


def test_remove_unused_only_undoes_an_untouched_add(stores: Stores) -> None:
    stores.agents.add(definition(), [event("registered")])
    assert stores.agents.remove_unused("trading")
    assert stores.agents.get("trading") is None and stores.agents.events("trading") == []
    stored = stores.agents.add(definition(), [event("registered")])
    stores.agents.save(stored, expected_version=1, events=[event("updated")])
    assert not stores.agents.remove_unused("trading")


def test_save_is_conditional_and_writes_events_changes_and_step_together(
        stores: Stores) -> None:
    stored = stores.agents.add(definition(), [event("registered")])
    change = PendingChange(id=new_ulid(T0), agent="trading", kind=ChangeKind.TOOL_ADD,
                           payload={"tool": "c"}, requested_by="alice", requested_at=T0)
    step = RetirementStep(agent="trading", name=StepName.BLOCK_INBOUND,
                          status=StepStatus.DONE, attempts=1, started_at=T0, completed_at=T0,
                          result={"inbound_blocked": True})
    saved = stores.agents.save(replace(stored, inbound_blocked=True, read_only=True),
                               expected_version=1, events=[event("a"), event("b", x=1)],
                               changes=[change], step=step)
    assert saved.version == 2 and saved.inbound_blocked and saved.read_only
    assert [(e.seq, e.kind) for e in stores.agents.events("trading")] == [
        (1, "registered"), (2, "a"), (3, "b")]
    assert stores.agents.events("trading", after=2)[0].details == {"x": 1}
    assert stores.agents.changes("trading", pending_only=True) == [change]
    assert stores.agents.steps("trading") == [step]
    with pytest.raises(AgentChangedError):
        stores.agents.save(stored, expected_version=1, events=[event("lost")])
    assert len(stores.agents.events("trading")) == 3  # nothing of the refused write
    with pytest.raises(AgentNotFoundError):
        stores.agents.save(definition("ghost"), expected_version=1)
    decided = replace(change, status=ChangeStatus.APPROVED, decided_by="bob", decided_at=T0)
    stores.agents.save(saved, expected_version=2, changes=[decided])
    assert stores.agents.changes("trading", pending_only=True) == []
    assert stores.agents.changes("trading") == [decided]


def test_concurrent_writers_one_wins_and_events_stay_gapless(stores: Stores) -> None:
    stored = stores.agents.add(definition(), [event("registered")])
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def write(i: int) -> None:
        barrier.wait()
        try:
            stores.agents.save(replace(stored, purpose=f"p{i}"), expected_version=1,
                               events=[event(f"w{i}")])
            outcomes.append("won")
        except AgentChangedError:
            outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]
    assert [e.seq for e in stores.agents.events("trading")] == [1, 2]


def test_steps_upsert(stores: Stores) -> None:
    stores.agents.add(definition(), [])
    running = RetirementStep(agent="trading", name=StepName.SANITIZE_MEMORY,
                             status=StepStatus.RUNNING, attempts=1, started_at=T0)
    stores.agents.save_step(running)
    failed = replace(running, status=StepStatus.FAILED, error="hook failed",
                     result={"hooks": {"command:wipe": {"status": "failed"}}})
    stores.agents.save_step(failed)
    first = RetirementStep(agent="trading", name=StepName.REVOKE_CREDENTIALS,
                           status=StepStatus.DONE, attempts=1)
    stores.agents.save_step(first)
    assert stores.agents.steps("trading") == [first, failed]


def test_one_open_finding_per_agent_and_kind(stores: Stores) -> None:
    def finding(kind: FindingKind, at: datetime = T0) -> Finding:
        return Finding(id=new_ulid(at), agent="trading", kind=kind, detail="d", action="flag",
                       opened_at=at)

    first = finding(FindingKind.OWNER_INACTIVE)
    assert stores.findings.open(first) == first
    assert stores.findings.open(finding(FindingKind.OWNER_INACTIVE)) is None
    other = finding(FindingKind.NO_RECENT_INSTANCE, T0 + timedelta(seconds=1))
    assert stores.findings.open(other) == other
    assert stores.findings.list(agent="trading") == [first, other]
    stores.findings.mark_acted(first.id, T0 + timedelta(hours=1))
    closed = stores.findings.resolve("trading", [FindingKind.OWNER_INACTIVE], T0 + timedelta(
        hours=2))
    assert [(f.id, f.resolved_at, f.acted_at) for f in closed] == [
        (first.id, T0 + timedelta(hours=2), T0 + timedelta(hours=1))]
    assert stores.findings.resolve("trading", [FindingKind.OWNER_INACTIVE], T0) == []
    again = finding(FindingKind.OWNER_INACTIVE, T0 + timedelta(hours=3))
    assert stores.findings.open(again) == again  # resolved ones do not block a new one
    assert [f.id for f in stores.findings.list()] == [other.id, again.id]
    assert len(stores.findings.list(open_only=False)) == 3


def instance(agent: str, pid: int, seen: datetime) -> AgentInstance:
    instance_id = new_ulid(seen)
    return AgentInstance(
        id=instance_id, node_id="ab" * 16, entry_id="00000000-0000-0000-0000-000000000001",
        spiffe_id=SpiffeId.parse(f"spiffe://example.org/agent/{agent}/instance/{instance_id}"),
        agent=agent, pid=pid, start_time=1.0, uid=0, gid=0, exe_path="/bin/x",
        exe_sha256="ab" * 32, selectors=parse_selectors(["unix:uid:0"]), parent_instance_id=None,
        first_seen_at=seen, last_seen_at=seen)


def test_activity_last_seen_and_retiring_instances(stores: Stores) -> None:
    stores.instances.register(instance("trading", 10, T0))
    stores.instances.register(instance("trading", 11, T0 + timedelta(hours=2)))
    stores.instances.register(instance("quotes", 12, T0 + timedelta(hours=1)))
    assert stores.activity.last_seen(["trading", "quotes", "idle"]) == {
        "trading": T0 + timedelta(hours=2), "quotes": T0 + timedelta(hours=1)}
    many = [f"a{i}" for i in range(600)] + ["quotes"]
    assert stores.activity.last_seen(many) == {"quotes": T0 + timedelta(hours=1)}
    assert stores.activity.count_instances("trading") == (2, 0)
    assert stores.activity.retire_instances("trading", T0 + timedelta(days=1)) == 2
    assert stores.activity.retire_instances("trading", T0 + timedelta(days=2)) == 0
    assert stores.activity.count_instances("trading") == (2, 2)
    assert stores.activity.count_instances("quotes") == (1, 0)


def test_residual_use_is_counted_per_agent_kind_node_and_id(stores: Stores) -> None:
    use = IdentityUse(agent="trading", kind="x509_svid", node_id="ab" * 16, entry_id="e",
                      spiffe_id="spiffe://example.org/agent/trading/instance/x")
    stores.residual.record(use, T0)
    stores.residual.record(use, T0 + timedelta(minutes=5))
    stores.residual.record(replace(use, kind="jwt_svid"), T0 + timedelta(minutes=1))
    rows = stores.residual.list("trading")
    assert [(r.kind, r.count, r.first_at, r.last_at) for r in rows] == [
        ("x509_svid", 2, T0, T0 + timedelta(minutes=5)),
        ("jwt_svid", 1, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1))]
    assert stores.residual.list("other") == [] and len(stores.residual.list()) == 2
