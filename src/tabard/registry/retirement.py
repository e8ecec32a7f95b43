"""Retirement (the leaver, ARCHITECTURE §5): ordered, idempotent, resumable steps.

1. ``revoke_credentials`` — the agent's instances are marked retired and the identity gate
   refuses every SVID and instance from the moment retirement starts; X509- and JWT-SVIDs
   already issued run out within their entry's TTL (the step records by when). This
   deployment issues no OAuth tokens or secret leases yet; the step says so.
2. ``remove_grants`` — approved tools and policy bindings are cleared, pending changes
   cancelled.
3. ``block_inbound`` — the ``inbound_blocked`` flag the gateway reads is set.
4. ``sanitize_memory`` — the agent's sanitisation hooks run in order; each hook's result is
   recorded as it finishes, a failing hook fails the step and is retried on the next run.
5. ``seal_trail`` — a SHA-256 hash chain over the agent's lifecycle events is stored as its
   seal (:func:`trail_digest`); :meth:`RetirementService.verify_seal` recomputes it.
6. ``watch_residual`` — from here on the identity gate's records of refused attempts are
   the residual-use report; open orphan findings are closed (a retired agent is nobody's
   orphan) and the agent becomes ``retired``.

Crash safety: a step is marked done only *after* its side effect is durable — in the same
transaction when the effect is a database write, right after otherwise — and a run skips the
steps already done. Killing the server at any point and running again (the server resumes
every ``retiring`` agent when it starts) finishes the procedure without repeating a finished
side effect; only a hook that was running when the process died runs again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from tabard.clock import Clock
from tabard.errors import TabardError
from tabard.registry.agent_errors import AgentNotFoundError, IllegalTransitionError
from tabard.registry.agents import (
    AgentDefinition,
    AgentEvent,
    AgentQuery,
    AgentState,
    ChangeStatus,
    EventDraft,
    FindingKind,
    HookOutcome,
    RetirementStep,
    StepName,
    StepStatus,
)
from tabard.registry.lifecycle import check_transition
from tabard.registry.ports import (
    AgentActivity,
    AgentStore,
    EntryStore,
    FindingStore,
    HookRunner,
)

__all__ = [
    "RETIREMENT_ACTOR",
    "TRAIL_DOMAIN",
    "RetirementService",
    "RetirementStatus",
    "SealCheck",
    "trail_digest",
]

RETIREMENT_ACTOR = "tabard:retirement"
TRAIL_DOMAIN = b"tabard agent trail v1\x00"
log = logging.getLogger("tabard.registry.retirement")


def trail_digest(name: str, events: list[AgentEvent]) -> str:
    """The head of the hash chain ``h0 = SHA-256(domain || name)``,
    ``h(i) = SHA-256(h(i-1) || RFC 8785 form of event i)`` over ``events`` in order."""
    head = hashlib.sha256(TRAIL_DOMAIN + name.encode()).digest()
    for event in events:
        head = hashlib.sha256(head + event.canonical()).digest()
    return head.hex()


@dataclass(frozen=True, slots=True)
class RetirementStatus:
    agent: str
    state: AgentState
    steps: tuple[RetirementStep, ...]

    @property
    def finished(self) -> bool:
        return self.state is AgentState.RETIRED

    @property
    def failed(self) -> RetirementStep | None:
        return next((s for s in self.steps if s.status is StepStatus.FAILED), None)


@dataclass(frozen=True, slots=True)
class SealCheck:
    agent: str
    sealed: bool
    valid: bool
    seal: str | None
    recomputed: str | None
    events: int


class _StepFailed(Exception):
    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class RetirementService:
    """Starts, runs and resumes retirements; at most one run per agent in this process."""

    def __init__(self, agents: AgentStore, activity: AgentActivity, entries: EntryStore,
                 hooks: HookRunner, clock: Clock, findings: FindingStore | None = None) -> None:
        self._agents = agents
        self._findings = findings
        self._activity = activity
        self._entries = entries
        self._hooks = hooks
        self._clock = clock
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _get(self, name: str) -> AgentDefinition:
        agent = self._agents.get(name) if isinstance(name, str) else None
        if agent is None:
            raise AgentNotFoundError(f"no agent named {name!r}")
        return agent

    def start(self, name: str, *, actor: str, reason: str = "") -> RetirementStatus:
        """Move the agent to ``retiring`` (from then on no identity is issued); idempotent
        for an agent already retiring. The steps run in :meth:`run`."""
        agent = self._get(name)
        if agent.state is not AgentState.RETIRING:
            check_transition(name, agent.state, AgentState.RETIRING, "retire")
            now = self._clock.now()
            self._agents.save(
                replace(agent, state=AgentState.RETIRING, state_changed_at=now, updated_at=now),
                expected_version=agent.version, events=[EventDraft(
                    kind="retirement_started", actor=actor, reason=reason, at=now,
                    from_state=agent.state, to_state=AgentState.RETIRING,
                    details={"steps": [s.value for s in StepName]})])
        return self.status(name)

    def status(self, name: str) -> RetirementStatus:
        agent = self._get(name)
        stored = {s.name: s for s in self._agents.steps(name)}
        steps = tuple(stored.get(n) or RetirementStep(agent=name, name=n) for n in StepName)
        return RetirementStatus(name, agent.state, steps)

    def retiring(self) -> list[str]:
        return [a.name for a in self._agents.list(AgentQuery(state=AgentState.RETIRING))]

    def resume_all(self) -> list[RetirementStatus]:
        """Run every unfinished retirement (at server start)."""
        out = []
        for name in self.retiring():
            try:
                out.append(self.run(name))
            except Exception:
                log.exception("resuming the retirement of an agent failed",
                              extra={"agent": name})
        return out

    def run(self, name: str) -> RetirementStatus:
        """Run the steps not done yet, in order; stop at the first that fails."""
        lock = self._lock(name)
        if not lock.acquire(blocking=False):
            return self.status(name)  # another thread of this process is running it
        try:
            agent = self._get(name)
            if agent.state is AgentState.RETIRED:
                return self.status(name)
            if agent.state is not AgentState.RETIRING:
                raise IllegalTransitionError(f"agent {name!r} is {agent.state.value}, not "
                                             "retiring: start the retirement first")
            done = {s.name for s in self._agents.steps(name) if s.status is StepStatus.DONE}
            for step_name in StepName:
                if step_name in done:
                    continue
                if not self._run_step(name, step_name):
                    break
            return self.status(name)
        finally:
            lock.release()

    def _lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def _run_step(self, name: str, step_name: StepName) -> bool:
        previous = next((s for s in self._agents.steps(name) if s.name is step_name), None)
        now = self._clock.now()
        step = RetirementStep(
            agent=name, name=step_name, status=StepStatus.RUNNING,
            attempts=(previous.attempts if previous else 0) + 1,
            started_at=previous.started_at if previous and previous.started_at else now,
            result=dict(previous.result) if previous else {}, error=None)
        self._agents.save_step(step)
        actions: dict[StepName, Callable[[RetirementStep], None]] = {
            StepName.REVOKE_CREDENTIALS: self._revoke,
            StepName.REMOVE_GRANTS: self._remove_grants,
            StepName.BLOCK_INBOUND: self._block_inbound,
            StepName.SANITIZE_MEMORY: self._sanitize,
            StepName.SEAL_TRAIL: self._seal,
            StepName.WATCH_RESIDUAL: self._watch,
        }
        try:
            actions[step_name](step)
            return True
        except _StepFailed as exc:
            self._fail(step, str(exc), exc.result)
        except TabardError as exc:
            self._fail(step, exc.message, step.result)
        except Exception as exc:
            log.exception("retirement step failed", extra={"agent": name,
                                                           "step": step_name.value})
            self._fail(step, f"internal error ({exc.__class__.__name__})", step.result)
        return False

    def _fail(self, step: RetirementStep, message: str, result: dict[str, Any]) -> None:
        self._agents.save_step(replace(step, status=StepStatus.FAILED, error=message,
                                       result=result))

    def _complete(self, step: RetirementStep, agent: AgentDefinition, result: dict[str, Any],
                  *, updated: AgentDefinition | None = None,
                  extra_events: tuple[EventDraft, ...] = (), **kwargs: Any) -> None:
        """Mark the step done in the same transaction as the agent's change and its event."""
        now = self._clock.now()
        done = replace(step, status=StepStatus.DONE, completed_at=now, result=result,
                       error=None)
        event = EventDraft(kind="retirement_step", actor=RETIREMENT_ACTOR,
                           reason=f"step {step.number}: {step.name.value}", at=now,
                           details={"step": step.name.value, "number": step.number,
                                    "attempts": step.attempts})
        self._agents.save(replace(updated or agent, updated_at=now),
                          expected_version=agent.version, events=[event, *extra_events],
                          step=done, **kwargs)

    # --- the steps ----------------------------------------------------------------------------

    def _revoke(self, step: RetirementStep) -> None:
        agent = self._get(step.agent)
        retiring_at = agent.state_changed_at
        self._activity.retire_instances(agent.name, self._clock.now())
        total, retired = self._activity.count_instances(agent.name)
        result: dict[str, Any] = {
            "instances": total,
            "instances_retired": retired,
            "svid_issuance_refused_since": retiring_at.isoformat(),
            "tokens": "none: this deployment issues no OAuth access tokens yet",
            "leases": "none: this deployment issues no secret leases yet",
        }
        entry = self._entries.get(agent.entry_id) if agent.entry_id else None
        if entry is not None:
            result["x509_svids_valid_until_at_most"] = (
                retiring_at + timedelta(seconds=entry.x509_svid_ttl)).isoformat()
            result["jwt_svids_valid_until_at_most"] = (
                retiring_at + timedelta(seconds=entry.jwt_svid_ttl)).isoformat()
        self._complete(step, agent, result)

    def _remove_grants(self, step: RetirementStep) -> None:
        agent = self._get(step.agent)
        now = self._clock.now()
        pending = self._agents.changes(agent.name, pending_only=True)
        cancelled = [replace(c, status=ChangeStatus.CANCELLED, decided_by=RETIREMENT_ACTOR,
                             decided_at=now) for c in pending]
        result = {"tools_removed": list(agent.tools),
                  "policy_bindings_removed": dict(agent.policy_bindings),
                  "pending_changes_cancelled": [c.id for c in cancelled]}
        self._complete(step, agent, result,
                       updated=replace(agent, tools=(), policy_bindings={}),
                       changes=cancelled)

    def _block_inbound(self, step: RetirementStep) -> None:
        agent = self._get(step.agent)
        self._complete(step, agent, {"inbound_blocked": True},
                       updated=replace(agent, inbound_blocked=True))

    def _sanitize(self, step: RetirementStep) -> None:
        agent = self._get(step.agent)
        hooks: dict[str, Any] = dict(step.result.get("hooks", {}))
        for hook in agent.sanitization_hooks:
            record = hooks.get(hook.label, {})
            if record.get("status") == "done":
                continue
            try:
                outcome = self._hooks.run(hook, agent)
            except TabardError as exc:
                outcome = HookOutcome(False, exc.message)
            at = self._clock.now()
            hooks[hook.label] = {
                "kind": hook.kind.value, "target": hook.target,
                "status": "done" if outcome.ok else "failed", "detail": outcome.detail,
                "at": at.isoformat(), "attempts": int(record.get("attempts", 0)) + 1,
            }
            # recorded before the next hook starts: a crash never repeats a finished hook
            self._agents.save_step(replace(step, result={"hooks": hooks}))
            if not outcome.ok:
                raise _StepFailed(f"hook {hook.label} failed: {outcome.detail}",
                                  {"hooks": hooks})
        self._complete(step, agent, {"hooks": hooks, "count": len(agent.sanitization_hooks)})

    def _seal(self, step: RetirementStep) -> None:
        agent = self._get(step.agent)
        events = self._agents.events(agent.name)
        head = trail_digest(agent.name, events)
        now = self._clock.now()
        through = events[-1].seq if events else 0
        result = {"algorithm": "sha256-chain-rfc8785", "seal": head, "events": len(events),
                  "sealed_through": through}
        self._complete(step, agent, result,
                       updated=replace(agent, seal=head, sealed_through=through, sealed_at=now))

    def _watch(self, step: RetirementStep) -> None:
        agent = self._get(step.agent)
        now = self._clock.now()
        closed = (self._findings.resolve(agent.name, list(FindingKind), now)
                  if self._findings is not None else [])
        result = {"residual_use_recorded_since": agent.state_changed_at.isoformat(),
                  "report": f"tabard agents residual {agent.name}",
                  "findings_closed": [f.id for f in closed]}
        retired = EventDraft(kind="retired", actor=RETIREMENT_ACTOR, reason="all retirement "
                             "steps done", at=now, from_state=AgentState.RETIRING,
                             to_state=AgentState.RETIRED, details={"seal": agent.seal})
        self._complete(step, agent, result,
                       updated=replace(agent, state=AgentState.RETIRED, state_changed_at=now),
                       extra_events=(retired,))

    # --- the seal -------------------------------------------------------------------------------

    def verify_seal(self, name: str) -> SealCheck:
        """Recompute the chain over the sealed events and compare it with the stored seal."""
        agent = self._get(name)
        if agent.seal is None or agent.sealed_through is None:
            return SealCheck(name, False, False, None, None, 0)
        events = [e for e in self._agents.events(name) if e.seq <= agent.sealed_through]
        recomputed = trail_digest(name, events)
        return SealCheck(name, True, recomputed == agent.seal, agent.seal, recomputed,
                         len(events))
