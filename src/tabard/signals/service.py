"""The kill switch: suspend, narrow and resume agents, instances, users and nodes.

Every change is, in this order:

1. recorded in the audit log (``kill_switch``); if the log cannot take it the change is
   refused and nothing happens (fail closed);
2. for an agent's suspension, the lifecycle moved to ``suspended`` when it is active (the
   entry remembers it did, so resume moves it back, and only then);
3. committed with the target's new entries as the next event of the signal log, and
   published (:class:`~tabard.signals.hub.SignalHub`): enforcement points hear of it now;
4. for a suspension, the target's OAuth access tokens and vault leases revoked, and the
   agent's suspension hook run in the background; both results go to the audit log.

Resume lifts only what the kill switch set: the target's suspension, its narrowing, or both
(``only``), and the lifecycle only when that suspension moved it. A lifecycle suspension
made otherwise (``tabard agents`` lifecycle endpoint, the orphan sweep) stays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from tabard.clock import Clock
from tabard.errors import TabardError
from tabard.signals.errors import InvalidKillError, KillConflictError
from tabard.signals.hub import SignalHub
from tabard.signals.model import (
    MAX_REASON,
    KillAction,
    KillEntry,
    KillState,
    KillTarget,
    Narrowing,
    SignalEvent,
    TargetKind,
)
from tabard.signals.ports import Change, HookRunner, KillAudit, KillEffects, SignalStore

__all__ = ["KillSwitch"]

log = logging.getLogger("tabard.signals")


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise InvalidKillError(f"a reason is text of at most {MAX_REASON} characters")
    return reason.strip()


class KillSwitch:
    def __init__(self, store: SignalStore, hub: SignalHub, clock: Clock, *,
                 audit: KillAudit | None = None, effects: KillEffects | None = None,
                 hooks: HookRunner | None = None, background_hooks: bool = True) -> None:
        self._store = store
        self.hub = hub
        self._clock = clock
        self._audit = audit
        self._effects = effects
        self._hooks = hooks
        self._background = background_hooks

    # --- reading -------------------------------------------------------------------------

    def state(self) -> KillState:
        """The stored state (consistent with the log: every event up to ``last_event_id``)."""
        return self._store.state()

    def events(self, *, after: int = 0, limit: int = 1000) -> list[SignalEvent]:
        return self._store.events(after=after, limit=limit)

    def last_event_id(self) -> int:
        return self._store.last_event_id()

    # --- changing ------------------------------------------------------------------------

    def _record(self, action: str, target: KillTarget, actor: str, details: Mapping[str, Any],
                outcome: str = "success") -> None:
        if self._audit is None:
            return
        self._audit.record(f"kill.{action}", target, actor, dict(details), outcome)

    def _commit(self, target: KillTarget,
                decide: Callable[[tuple[KillEntry, ...]], Change]) -> SignalEvent:
        event = self._store.commit(target, self._clock.now(), decide)
        try:
            self.hub.poke()
        except TabardError:  # the change is stored; the periodic poke publishes it
            log.warning("signal %s stored but not yet published", event.id)
        return event

    def suspend(self, target: KillTarget, *, actor: str, reason: str = "") -> SignalEvent:
        reason = _reason(reason)
        if self._effects is not None:
            self._effects.check(target)
        current = self.hub.kill_list.entries(target)
        if any(e.action is KillAction.SUSPEND for e in current):
            raise KillConflictError(f"cannot suspend {target}: it is already suspended by the "
                                    "kill switch")
        self._record("suspend", target, actor, {"reason": reason})
        lifecycle = False
        if self._effects is not None and target.kind is TargetKind.AGENT:
            lifecycle = self._effects.suspend_lifecycle(target.value, actor=actor,
                                                        reason=reason or "kill switch")
        at = self._clock.now()

        def decide(entries: tuple[KillEntry, ...]) -> Change:
            if any(e.action is KillAction.SUSPEND for e in entries):
                raise KillConflictError(f"cannot suspend {target}: it is already suspended "
                                        "by the kill switch")
            entry = KillEntry(target, KillAction.SUSPEND, reason, actor, at,
                              lifecycle=lifecycle)
            return Change((*entries, entry), KillAction.SUSPEND, actor, reason,
                          {"lifecycle": lifecycle})

        event = self._commit(target, decide)
        self._after_suspend(target, actor, reason, event)
        return event

    def narrow(self, target: KillTarget, narrowing: Narrowing, *, actor: str,
               reason: str = "") -> SignalEvent:
        reason = _reason(reason)
        if self._effects is not None:
            self._effects.check(target)
        self._record("narrow", target, actor, {"reason": reason,
                                               "narrowing": narrowing.to_json()})
        at = self._clock.now()

        def decide(entries: tuple[KillEntry, ...]) -> Change:
            kept = tuple(e for e in entries if e.action is not KillAction.NARROW)
            entry = KillEntry(target, KillAction.NARROW, reason, actor, at, narrowing)
            return Change((*kept, entry), KillAction.NARROW, actor, reason,
                          {"narrowing": narrowing.to_json()})

        return self._commit(target, decide)

    def resume(self, target: KillTarget, *, actor: str, reason: str = "",
               only: KillAction | None = None) -> SignalEvent | None:
        """Lift the target's kill-switch entries (``only`` one action); None when none was
        in force (nothing recorded, nothing published)."""
        reason = _reason(reason)
        if only is KillAction.RESUME:
            raise InvalidKillError("only is suspend or narrow")
        current = self.hub.kill_list.entries(target) or self._stored_entries(target)
        if not any(only is None or e.action is only for e in current):
            return None
        self._record("resume", target, actor, {"reason": reason,
                                               "only": only.value if only else None})
        lifted: list[KillEntry] = []

        def decide(entries: tuple[KillEntry, ...]) -> Change:
            lifted.clear()
            kept: list[KillEntry] = []
            for e in entries:
                (lifted if only is None or e.action is only else kept).append(e)
            return Change(tuple(kept), KillAction.RESUME, actor, reason,
                          {"lifted": [e.action.value for e in lifted]})

        event = self._commit(target, decide)
        if self._effects is not None and target.kind is TargetKind.AGENT and any(
                e.action is KillAction.SUSPEND and e.lifecycle for e in lifted):
            try:
                done = self._effects.resume_lifecycle(target.value, actor=actor,
                                                      reason=reason or "kill switch resumed")
            except TabardError as exc:
                done = False
                log.warning("lifecycle of %s not resumed: %s", target.value, exc.message)
            self._safe_record("resume.lifecycle", target, actor, {"resumed": done})
        return event

    def _stored_entries(self, target: KillTarget) -> tuple[KillEntry, ...]:
        return tuple(e for e in self._store.state().entries if e.target == target)

    # --- after a suspension ----------------------------------------------------------------

    def _safe_record(self, action: str, target: KillTarget, actor: str,
                     details: Mapping[str, Any], outcome: str = "success") -> None:
        try:
            self._record(action, target, actor, details, outcome)
        except TabardError as exc:
            log.error("kill-switch result of %s not recorded: %s", target, exc.message)

    def _after_suspend(self, target: KillTarget, actor: str, reason: str,
                       event: SignalEvent) -> None:
        if self._effects is not None:
            try:
                counts = self._effects.revoke(target)
                self._safe_record("revoke", target, actor, {"event_id": event.id, **counts})
            except TabardError as exc:
                self._safe_record("revoke", target, actor,
                                  {"event_id": event.id, "error": exc.message}, "error")
        if target.kind is not TargetKind.AGENT or self._hooks is None:
            return
        if self._background:
            threading.Thread(target=self._run_hook, args=(target, actor, reason, event),
                             name=f"kill-hook-{target.value}", daemon=True).start()
        else:
            self._run_hook(target, actor, reason, event)

    def _run_hook(self, target: KillTarget, actor: str, reason: str,
                  event: SignalEvent) -> None:
        assert self._hooks is not None
        context = self._effects.hook_context(target.value) if self._effects else None
        payload = {"reason": reason, "actor": actor, "event_id": event.id,
                   "at": event.at.isoformat(), "agent_definition": dict(context or {})}
        try:
            result = self._hooks.run(target.value, payload)
        except Exception as exc:  # a hook must never take the server down
            result = (False, f"hook failed to run: {type(exc).__name__}")
        if result is None:
            return
        ok, detail = result
        self._safe_record("hook", target, actor, {"event_id": event.id, "ok": ok,
                                                  "detail": detail},
                          "success" if ok else "failure")
