"""Orphan detection: agents whose accountable human is gone, or that nobody looks after.

Two ways in (ARCHITECTURE §5):

* at once, when the directory reports that a user was deactivated or deleted —
  :class:`OrphanDetector` is a ``tabard.directory.ports.UserStatusListener``;
* by a periodic :meth:`OrphanDetector.sweep`: owner missing, inactive or no longer a person;
  owner attestation overdue; no instance seen for ``stale_after``.

Each reason is a :class:`~tabard.registry.agents.Finding` (one open per agent and kind), with
an event on the agent's trail. The policy's action is ``flag`` (findings only) or
``suspend``: an orphan still open after ``orphan_grace`` is suspended by the sweep. An agent
whose new owner did not attest before the transfer deadline is narrowed to read-only at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from tabard.clock import Clock
from tabard.registry.agent_errors import AgentChangedError, IllegalTransitionError
from tabard.registry.agents import (
    AgentDefinition,
    AgentQuery,
    AgentState,
    EventDraft,
    Finding,
    FindingKind,
)
from tabard.registry.instances import new_ulid
from tabard.registry.lifecycle import LifecyclePolicy, check_transition, record_findings
from tabard.registry.ports import (
    AgentActivity,
    AgentStore,
    DirectoryPerson,
    FindingStore,
    OwnerDirectory,
)

__all__ = ["SWEEP_ACTOR", "SWEEP_PAGE", "Orphan", "OrphanDetector", "SweepReport"]

SWEEP_ACTOR = "tabard:orphan-sweep"
SWEEP_PAGE = 1000
_MAX_OWNED = 100_000  # the most an owner status change flags at once (AgentQuery maximum)
"""Definitions read per query by the sweep (it reads them all, page after page)."""
DIRECTORY_ACTOR = "tabard:directory"
OWNER_KINDS = (FindingKind.OWNER_INACTIVE, FindingKind.OWNER_DELETED, FindingKind.OWNER_MISSING)
_WATCHED = (AgentState.REGISTERED, AgentState.ACTIVE, AgentState.PENDING_RECERTIFICATION,
            AgentState.SUSPENDED)
_RUNNING = (AgentState.ACTIVE, AgentState.PENDING_RECERTIFICATION)
log = logging.getLogger("tabard.registry.orphans")


@dataclass(frozen=True, slots=True)
class SweepReport:
    agents: int
    opened: int
    resolved: int
    suspended: int
    narrowed: int


@dataclass(frozen=True, slots=True)
class Orphan:
    agent: AgentDefinition
    findings: tuple[Finding, ...]


class OrphanDetector:
    """Opens and resolves orphan findings and applies the policy's action."""

    def __init__(self, agents: AgentStore, findings: FindingStore, activity: AgentActivity,
                 directory: OwnerDirectory, clock: Clock,
                 policy: LifecyclePolicy | None = None, *, page_size: int = SWEEP_PAGE) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._page_size = page_size
        self._agents = agents
        self._findings = findings
        self._activity = activity
        self._directory = directory
        self._clock = clock
        self._policy = policy or LifecyclePolicy()

    # --- the directory's listener --------------------------------------------------------------

    def user_status_changed(self, user_name: str, active: bool, deleted: bool,
                            at: datetime) -> None:
        """Flag the user's agents at once when they were deactivated or deleted; resolve the
        owner findings when they were reactivated."""
        owned = self._agents.list(AgentQuery(owner=user_name, limit=_MAX_OWNED))
        if len(owned) == _MAX_OWNED:
            log.warning("an owner has %d agents or more; the periodic sweep covers the rest",
                        _MAX_OWNED)
        for agent in owned:
            if agent.state not in _WATCHED:
                continue
            if deleted:
                self._open(agent, FindingKind.OWNER_DELETED,
                           f"owner {agent.owner!r} was deleted from the directory", at,
                           DIRECTORY_ACTOR)
            elif not active:
                self._open(agent, FindingKind.OWNER_INACTIVE,
                           f"owner {agent.owner!r} was deactivated in the directory", at,
                           DIRECTORY_ACTOR)
            else:
                self._close(agent.name, OWNER_KINDS, at, DIRECTORY_ACTOR,
                            f"owner {agent.owner!r} is active again")

    # --- the sweep -------------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        """One pass over every agent that is not leaving."""
        now = self._clock.now()
        agents = self._watched()
        owners: dict[str, DirectoryPerson | None] = {}
        for owner in {a.owner for a in agents}:
            owners[owner] = self._directory.find_person(owner)
        seen = self._activity.last_seen([a.name for a in agents if a.state in _RUNNING])
        open_by_agent: dict[str, dict[FindingKind, Finding]] = {}
        for finding in self._findings.list(open_only=True):
            open_by_agent.setdefault(finding.agent, {})[finding.kind] = finding
        opened = resolved = narrowed = 0
        for agent in agents:
            current = open_by_agent.get(agent.name, {})
            wanted = self._conditions(agent, owners.get(agent.owner), seen.get(agent.name),
                                      current, now)
            for kind, detail in wanted.items():
                if kind not in current and self._open(agent, kind, detail, now, SWEEP_ACTOR):
                    opened += 1
            stale = [k for k in current if k not in wanted]
            if stale:
                resolved += self._close(agent.name, stale, now, SWEEP_ACTOR,
                                        "condition no longer holds")
            if (FindingKind.ATTESTATION_OVERDUE in wanted and agent.transferred_at is not None
                    and not agent.read_only and self._narrow(agent, now)):
                narrowed += 1
        suspended = self._act(now)
        report = SweepReport(len(agents), opened, resolved, suspended, narrowed)
        if opened or resolved or suspended or narrowed:
            log.info("orphan sweep", extra={"agents": report.agents, "opened": opened,
                                            "resolved": resolved, "suspended": suspended,
                                            "narrowed": narrowed})
        return report

    def _watched(self) -> list[AgentDefinition]:
        """Every definition the sweep looks at, read in keyset pages of ``page_size``."""
        out: list[AgentDefinition] = []
        after = ""
        while True:
            page = self._agents.page(_WATCHED, after=after, limit=self._page_size)
            out.extend(page)
            if len(page) < self._page_size:
                return out
            after = page[-1].name

    def _conditions(self, agent: AgentDefinition, person: DirectoryPerson | None,
                    last_seen: datetime | None, current: dict[FindingKind, Finding],
                    now: datetime) -> dict[FindingKind, str]:
        wanted: dict[FindingKind, str] = {}
        if person is None:
            if FindingKind.OWNER_DELETED in current:
                wanted[FindingKind.OWNER_DELETED] = current[FindingKind.OWNER_DELETED].detail
            else:
                wanted[FindingKind.OWNER_MISSING] = (f"owner {agent.owner!r} is not in the "
                                                     "directory")
        elif not person.is_person:
            wanted[FindingKind.OWNER_MISSING] = f"owner {agent.owner!r} is not a person"
        elif not person.active:
            wanted[FindingKind.OWNER_INACTIVE] = (f"owner {agent.owner!r} is not active in "
                                                  "the directory")
        due = agent.attestation_due_at
        if due is not None and due <= now:
            why = "after the ownership transfer" if agent.transferred_at else "periodic"
            wanted[FindingKind.ATTESTATION_OVERDUE] = (
                f"owner attestation ({why}) was due {due.isoformat()}")
        if agent.state in _RUNNING:
            reference = last_seen or agent.state_changed_at
            if now - reference >= self._policy.stale_after:
                wanted[FindingKind.NO_RECENT_INSTANCE] = (
                    f"no instance seen since {reference.isoformat()}"
                    if last_seen else f"no instance seen since activation "
                                      f"({reference.isoformat()})")
        return wanted

    def _open(self, agent: AgentDefinition, kind: FindingKind, detail: str, at: datetime,
              actor: str) -> bool:
        finding = Finding(id=new_ulid(at), agent=agent.name, kind=kind, detail=detail,
                          action=self._policy.orphan_action, opened_at=at)
        stored = self._findings.open(finding)
        if stored is None:
            return False
        record_findings(self._agents, agent.name, [EventDraft(
            kind="orphan_flagged", actor=actor, reason=detail, at=at,
            details={"finding_id": stored.id, "finding": kind.value,
                     "action": stored.action})])
        return True

    def _close(self, name: str, kinds: Iterable[FindingKind], at: datetime, actor: str,
               reason: str) -> int:
        closed = self._findings.resolve(name, list(kinds), at)
        if closed:
            record_findings(self._agents, name, [EventDraft(
                kind="finding_resolved", actor=actor, reason=reason, at=at,
                details={"finding_id": f.id, "finding": f.kind.value}) for f in closed])
        return len(closed)

    def _narrow(self, agent: AgentDefinition, now: datetime) -> bool:
        """Read-only until the new owner attests (the transfer deadline passed)."""
        for _ in range(5):
            current = self._agents.get(agent.name)
            if current is None or current.read_only or current.state.leaving:
                return False
            try:
                self._agents.save(replace(current, read_only=True, updated_at=now),
                                  expected_version=current.version, events=[EventDraft(
                                      kind="narrowed", actor=SWEEP_ACTOR, at=now,
                                      reason="the new owner did not attest before the "
                                             "transfer deadline",
                                      details={"read_only": True, "owner": current.owner})])
                return True
            except AgentChangedError:
                continue
        return False

    def _act(self, now: datetime) -> int:
        """Suspend the orphans whose grace period is over (policy ``suspend``)."""
        suspended = 0
        for finding in self._findings.list(open_only=True):
            if (finding.action != "suspend" or finding.acted_at is not None
                    or finding.opened_at + self._policy.orphan_grace > now):
                continue
            if self._suspend(finding, now):
                suspended += 1
            self._findings.mark_acted(finding.id, now)
        return suspended

    def _suspend(self, finding: Finding, now: datetime) -> bool:
        for _ in range(5):
            agent = self._agents.get(finding.agent)
            if agent is None or agent.state not in _RUNNING:
                return False
            try:
                check_transition(agent.name, agent.state, AgentState.SUSPENDED, "suspend")
                self._agents.save(
                    replace(agent, state=AgentState.SUSPENDED, state_changed_at=now,
                            updated_at=now),
                    expected_version=agent.version, events=[EventDraft(
                        kind="suspended", actor=SWEEP_ACTOR, at=now,
                        reason=f"orphan ({finding.kind.value}) for longer than the grace "
                               "period",
                        from_state=agent.state, to_state=AgentState.SUSPENDED,
                        details={"finding_id": finding.id})])
                return True
            except AgentChangedError:
                continue
            except IllegalTransitionError:
                return False
        return False

    # --- reporting ----------------------------------------------------------------------------

    def orphans(self) -> list[Orphan]:
        """Agents with open findings, by name."""
        by_agent: dict[str, list[Finding]] = {}
        for finding in self._findings.list(open_only=True):
            by_agent.setdefault(finding.agent, []).append(finding)
        out: list[Orphan] = []
        for name in sorted(by_agent):
            agent = self._agents.get(name)
            if agent is not None:
                out.append(Orphan(agent, tuple(by_agent[name])))
        return out
