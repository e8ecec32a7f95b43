"""What the kill switch needs from its surroundings, as small ports: the SQL signal log
(``tabard.store`` fills it) and the effects of a suspension on the registry, the OAuth AS and
the vault (``tabard.app`` fills them; this package may not import those)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tabard.signals.model import KillAction, KillEntry, KillState, KillTarget, SignalEvent

__all__ = ["Change", "HookRunner", "KillAudit", "KillEffects", "SignalStore"]


@dataclass(frozen=True, slots=True)
class Change:
    """What :meth:`SignalStore.commit`'s callback decides: the target's entries after the
    change and the event's fields."""

    entries: tuple[KillEntry, ...]
    action: KillAction
    actor: str
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


class SignalStore(Protocol):
    """The kill state and its event log; thread-safe."""

    def commit(self, target: KillTarget, at: datetime,
               decide: Callable[[tuple[KillEntry, ...]], Change]) -> SignalEvent:
        """In one transaction: read ``target``'s entries, call ``decide`` with them (it may
        raise to abort), store the entries it returns and append the event with the next id.
        Ids are assigned in commit order, so a reader that saw id N never later finds a new
        event below N."""
        ...

    def state(self) -> KillState: ...

    def events(self, *, after: int, limit: int) -> list[SignalEvent]: ...

    def last_event_id(self) -> int: ...


class KillEffects(Protocol):
    """Side effects of kill-switch changes outside this package."""

    def check(self, target: KillTarget) -> None:
        """Raise when the target does not exist (only agents are checked)."""
        ...

    def suspend_lifecycle(self, agent: str, *, actor: str, reason: str) -> bool:
        """Move an active agent's lifecycle to ``suspended``; True when this call did it
        (False when it was already suspended or cannot be)."""
        ...

    def resume_lifecycle(self, agent: str, *, actor: str, reason: str) -> bool: ...

    def revoke(self, target: KillTarget) -> dict[str, int]:
        """Revoke what the target holds now (OAuth access tokens, vault leases); counts."""
        ...

    def hook_context(self, agent: str) -> Mapping[str, Any] | None:
        """What the suspension hook is told about the agent (None: unknown agent)."""
        ...


class HookRunner(Protocol):
    def run(self, agent: str, payload: Mapping[str, Any]) -> tuple[bool, str] | None:
        """Run the agent's suspension hook; None when the agent has none."""
        ...



class KillAudit(Protocol):
    def record(self, operation: str, target: KillTarget, actor: str,
               details: Mapping[str, Any], outcome: str) -> None:
        """Write one ``kill_switch`` record durably (``outcome``: success, failure, error);
        raise (``Unavailable``) when it cannot: the change is then refused."""
        ...
