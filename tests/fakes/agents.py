"""The agent services over a real SQLite (or PostgreSQL) database, with a fake clock, a fake
owner directory and a recording hook runner: what the registry's agent tests build on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tabard.clock import FakeClock
from tabard.registry import (
    AgentDefinition,
    AgentIdentityGate,
    AgentService,
    AgentSpec,
    EntryService,
    EntrySvidService,
    HookKind,
    HookOutcome,
    InstanceService,
    InvalidAgentError,
    LifecyclePolicy,
    ModelRef,
    NodeRecord,
    OrphanDetector,
    RetirementService,
    SanitizationHook,
    node_spiffe_id,
    parse_selectors,
)
from tabard.spiffe import TrustDomain
from tabard.store import (
    Database,
    SqlAgentActivity,
    SqlAgentStore,
    SqlEntryStore,
    SqlFindingStore,
    SqlInstanceStore,
    SqlNodeStore,
    SqlResidualUseStore,
)
from tests.fakes.owner_directory import FakeOwnerDirectory

__all__ = ["T0", "TD", "AgentWorld", "RecordingHookRunner", "spec"]

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TD = TrustDomain("example.org")
DIGEST = "sha256:" + "ab" * 32


@dataclass
class RecordingHookRunner:
    """Knows the command hooks in ``available``; each run is appended to ``runs``; a hook
    fails while ``failing`` names it; ``before_run`` lets a test act mid-run."""

    available: set[str] = field(default_factory=lambda: {"wipe", "purge"})
    failing: set[str] = field(default_factory=set)
    runs: list[str] = field(default_factory=list)
    before_run: Callable[[SanitizationHook], None] | None = None

    def check(self, hook: SanitizationHook) -> None:
        if hook.kind is HookKind.COMMAND and hook.target not in self.available:
            raise InvalidAgentError(f"command hook {hook.target!r} is not installed")

    def run(self, hook: SanitizationHook, agent: AgentDefinition) -> HookOutcome:
        if self.before_run is not None:
            self.before_run(hook)
        self.runs.append(hook.label)
        if hook.target in self.failing:
            return HookOutcome(False, "exit 3: disk busy")
        return HookOutcome(True, "exit 0")


def spec(name: str = "trading", **changes: Any) -> AgentSpec:
    values: dict[str, Any] = {
        "name": name, "owner": "carol", "purpose": "Places trades for the desk",
        "model": ModelRef("anthropic", "claude", "4"), "hosting": "k8s/prod-eu",
        "tier": "dev", "tools": ["quotes.read", "orders.place"], "image_digest": DIGEST,
        "selectors": ["unix:uid:1000"], "policy_bindings": {"dev": "trading-dev"},
        **changes,
    }
    return AgentSpec(**values)


class AgentWorld:
    """Every agent service over one database, at a fake time, with one attested node."""

    def __init__(self, database_url: str, *, policy: LifecyclePolicy | None = None) -> None:
        self.db = Database(database_url)
        self.db.migrate()
        self.clock = FakeClock(T0)
        self.directory = FakeOwnerDirectory()
        self.directory.add("carol")
        self.directory.add("dave")
        self.directory.add("alice", roles={"approver"})
        self.directory.add("bob", roles={"approver"})
        self.directory.add("team-inbox", is_person=False)
        self.hooks = RecordingHookRunner()
        self.policy = policy or LifecyclePolicy()
        self.agent_store = SqlAgentStore(self.db)
        self.findings = SqlFindingStore(self.db)
        self.activity = SqlAgentActivity(self.db)
        self.residual = SqlResidualUseStore(self.db)
        self.entry_store = SqlEntryStore(self.db)
        self.instance_store = SqlInstanceStore(self.db)
        self.node_store = SqlNodeStore(self.db)
        self.entries = EntryService(self.entry_store, TD, self.clock)
        self.gate = AgentIdentityGate(self.agent_store, self.residual, self.clock)
        self.instances = InstanceService(self.instance_store, self.entry_store, self.clock,
                                         gate=self.gate)
        self.agents = AgentService(self.agent_store, self.findings, self.instance_store,
                                   self.residual, self.directory, self.entries,
                                   self.node_store, self.hooks, TD, self.clock, self.policy)
        self.orphans = OrphanDetector(self.agent_store, self.findings, self.activity,
                                      self.directory, self.clock, self.policy)
        self.retirement = RetirementService(self.agent_store, self.activity, self.entry_store,
                                            self.hooks, self.clock, self.findings)
        node_id = uuid.uuid4().hex
        self.node = NodeRecord(id=node_id, spiffe_id=node_spiffe_id(TD, node_id),
                               attestor="join_token",
                               selectors=parse_selectors(["join_token:x"]), attested_at=T0)
        self.node_store.add(self.node)

    def svids(self, minter: Any) -> EntrySvidService:
        return EntrySvidService(self.entry_store, self.instance_store, minter, self.clock,
                                gate=self.gate)

    def close(self) -> None:
        self.db.dispose()
