"""The PolicyStore contract on SQLite and PostgreSQL, through the policy service: epochs,
history, the current files, and a conflict when two writers take the same epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tabard.clock import FakeClock
from tabard.policy import (
    PolicyBundle,
    PolicyEngine,
    PolicyEpoch,
    PolicyEpochConflictError,
    PolicyService,
    StaticFacts,
    read_bundle,
)
from tabard.store import Database, SqlPolicyStore

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "policy" / "policies"


def service(db: Database, clock: FakeClock) -> PolicyService:
    return PolicyService(SqlPolicyStore(db), PolicyEngine(StaticFacts(), StaticFacts()), clock)


def test_epochs_history_and_current_files(db: Database) -> None:
    clock = FakeClock()
    policies = service(db, clock)
    assert policies.current() is None and policies.history() == []
    bundle = read_bundle(EXAMPLE)
    first = policies.apply(bundle, actor="admin:ci")
    assert first.changed and first.epoch.epoch == 1 and first.epoch.sha256 == bundle.sha256
    assert policies.engine.policy_epoch == 1
    again = policies.apply(bundle, actor="admin:ci")
    assert not again.changed and again.epoch == first.epoch
    clock.advance(60)
    smaller = PolicyBundle.of({n: t for n, t in bundle.files if n != "agents.cedar"})
    second = policies.apply(smaller, actor="admin:alice", expected_epoch=1)
    assert second.epoch.epoch == 2 and second.epoch.at == clock.now()
    stored = policies.current()
    assert stored is not None and stored.epoch == second.epoch
    assert dict(stored.files) == smaller.as_dict()
    assert [(e.epoch, e.actor) for e in policies.history()] == [(2, "admin:alice"),
                                                                (1, "admin:ci")]
    assert policies.history(limit=1)[0].files == smaller.names
    with pytest.raises(PolicyEpochConflictError):
        policies.apply(bundle, actor="admin:ci", expected_epoch=1)

    # a second server over the same database loads the newest epoch on refresh
    other = service(db, clock)
    other.refresh()
    assert other.engine.policy_epoch == 2
    assert set(other.engine.compiled.policies) == {
        "engineers-jira-github", "security-scanner", "release-managers-deploy",
        "deploy-needs-release-manager"}


def test_two_writers_cannot_take_the_same_epoch(db: Database) -> None:
    store = SqlPolicyStore(db)
    clock = FakeClock()
    record = PolicyEpoch(1, "admin:a", clock.now(), "0" * 64, ("a.cedar",))
    store.save({"a.cedar": "permit(principal, action, resource);"}, record)
    with pytest.raises(PolicyEpochConflictError):
        store.save({"b.cedar": ""}, PolicyEpoch(1, "admin:b", clock.now(), "1" * 64,
                                                 ("b.cedar",)))
    stored = store.current()
    assert stored is not None and list(stored.files) == ["a.cedar"]
    assert store.current_epoch() == 1
