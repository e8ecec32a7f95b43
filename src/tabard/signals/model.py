"""Kill-switch values: targets, entries, the change events of the signal log, and the local
kill list every enforcement point (server, node, gateway) keeps.

A target is an agent (definition name), an agent instance (SPIFFE ID), a user (user name) or
a node (SPIFFE ID). Each target holds at most one entry per action: a **suspension** and a
**narrowing** (graduated response: read-only, blocked tool categories, approval above a risk
level), each with its reason, actor and time. They are independent: lifting one leaves the
other. Every change is a :class:`SignalEvent` that carries the target's entries *after* the
change, so applying events is idempotent and a subscriber never needs the history before
the first event it sees, only a snapshot (:class:`KillState`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tabard.signals.errors import InvalidKillError
from tabard.spiffe import SpiffeId, SpiffeIdError

__all__ = [
    "MAX_REASON",
    "KillAction",
    "KillEntry",
    "KillList",
    "KillState",
    "KillTarget",
    "Narrowing",
    "Restriction",
    "SignalEvent",
    "TargetKind",
    "entries_json",
    "targets_of",
]

MAX_REASON = 1000
_AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_CATEGORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_CATEGORIES = 64
MAX_RISK = 100


class TargetKind(StrEnum):
    AGENT = "agent"
    INSTANCE = "instance"
    USER = "user"
    NODE = "node"


class KillAction(StrEnum):
    """The action of a change: the two kinds of entry, and ``resume`` which lifts them."""

    SUSPEND = "suspend"
    NARROW = "narrow"
    RESUME = "resume"


@dataclass(frozen=True, slots=True, order=True)
class KillTarget:
    kind: TargetKind
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.kind, TargetKind):
            object.__setattr__(self, "kind", TargetKind(self.kind))
        v = self.value
        if self.kind is TargetKind.AGENT:
            if not isinstance(v, str) or not _AGENT_NAME.fullmatch(v):
                raise InvalidKillError(f"agent name {v!r} must be 1-63 characters of a-z, "
                                       "0-9 and -")
        elif self.kind is TargetKind.USER:
            if not isinstance(v, str) or not v or len(v) > 256 or v.strip() != v:
                raise InvalidKillError("a user name must be 1-256 characters, no outer spaces")
            object.__setattr__(self, "value", v.lower())
        else:
            try:
                parsed = SpiffeId.parse(v)
            except SpiffeIdError as exc:
                raise InvalidKillError(f"{self.kind.value} must be a SPIFFE ID: {exc}") from exc
            segments = parsed.segments
            if self.kind is TargetKind.INSTANCE and not (
                    len(segments) == 4 and segments[0] == "agent" and segments[2] == "instance"):
                raise InvalidKillError("an instance is spiffe://<td>/agent/<name>/instance/<id>")
            if self.kind is TargetKind.NODE and segments[:1] != ("node",):
                raise InvalidKillError("a node is spiffe://<td>/node/...")

    @classmethod
    def of(cls, kind: str, value: str) -> KillTarget:
        try:
            k = TargetKind(kind)
        except ValueError:
            raise InvalidKillError(f"target kind must be one of "
                                   f"{', '.join(t.value for t in TargetKind)}") from None
        return cls(k, value)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.value}"


@dataclass(frozen=True, slots=True)
class Narrowing:
    """Graduated response: ``read_only`` (mutating operations denied), tool categories that
    are blocked, and a risk level above which a human must approve."""

    read_only: bool = False
    blocked_categories: frozenset[str] = frozenset()
    approval_above: int | None = None

    def __post_init__(self) -> None:
        cats = frozenset(self.blocked_categories)
        object.__setattr__(self, "blocked_categories", cats)
        if len(cats) > MAX_CATEGORIES:
            raise InvalidKillError(f"at most {MAX_CATEGORIES} blocked categories")
        for c in cats:
            if not isinstance(c, str) or not _CATEGORY.fullmatch(c):
                raise InvalidKillError(f"tool category {c!r} is not a valid name")
        a = self.approval_above
        if a is not None and (isinstance(a, bool) or not isinstance(a, int)
                              or not 0 <= a <= MAX_RISK):
            raise InvalidKillError(f"approval_above must be an integer from 0 to {MAX_RISK}")
        if not self.read_only and not cats and a is None:
            raise InvalidKillError("a narrowing needs read_only, a blocked category or "
                                   "approval_above")

    def merged(self, other: Narrowing) -> Narrowing:
        """The stricter of two narrowings, field by field."""
        ap = [x for x in (self.approval_above, other.approval_above) if x is not None]
        return Narrowing(self.read_only or other.read_only,
                         self.blocked_categories | other.blocked_categories,
                         min(ap) if ap else None)

    def to_json(self) -> dict[str, Any]:
        return {"read_only": self.read_only,
                "blocked_categories": sorted(self.blocked_categories),
                "approval_above": self.approval_above}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Narrowing:
        return cls(bool(data.get("read_only", False)),
                   frozenset(data.get("blocked_categories") or ()),
                   data.get("approval_above"))


@dataclass(frozen=True, slots=True)
class KillEntry:
    """One action in force on one target. ``lifecycle`` is true when the kill switch itself
    moved the agent's lifecycle to ``suspended`` (so resume moves it back, and only then)."""

    target: KillTarget
    action: KillAction
    reason: str
    actor: str
    at: datetime
    narrowing: Narrowing | None = None
    lifecycle: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.target.kind.value, "target": self.target.value,
                               "action": self.action.value, "reason": self.reason,
                               "actor": self.actor, "at": self.at.isoformat()}
        if self.narrowing is not None:
            out["narrowing"] = self.narrowing.to_json()
        if self.lifecycle:
            out["lifecycle"] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KillEntry:
        n = data.get("narrowing")
        return cls(KillTarget.of(data["kind"], data["target"]), KillAction(data["action"]),
                   str(data.get("reason", "")), str(data.get("actor", "")),
                   datetime.fromisoformat(data["at"]),
                   Narrowing.from_json(n) if n is not None else None,
                   bool(data.get("lifecycle", False)))


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """One change of the kill state: ``id`` increases strictly with every change, across all
    server replicas. ``entries`` are the target's entries after the change."""

    id: int
    at: datetime
    action: KillAction
    target: KillTarget
    actor: str
    reason: str
    entries: tuple[KillEntry, ...]
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "action": self.action.value,
                "kind": self.target.kind.value, "target": self.target.value,
                "actor": self.actor, "reason": self.reason,
                "entries": [e.to_json() for e in self.entries],
                "details": dict(self.details)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignalEvent:
        return cls(int(data["id"]), datetime.fromisoformat(data["at"]),
                   KillAction(data["action"]), KillTarget.of(data["kind"], data["target"]),
                   str(data.get("actor", "")), str(data.get("reason", "")),
                   tuple(KillEntry.from_json(e) for e in data.get("entries", ())),
                   dict(data.get("details") or {}))


@dataclass(frozen=True, slots=True)
class KillState:
    """A full snapshot: every entry in force, and the id of the last event it includes."""

    last_event_id: int
    entries: tuple[KillEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {"last_event_id": self.last_event_id,
                "entries": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KillState:
        return cls(int(data["last_event_id"]),
                   tuple(KillEntry.from_json(e) for e in data.get("entries", ())))


@dataclass(frozen=True, slots=True)
class Restriction:
    """What the kill list says about one request's principals: a suspension (the entry that
    suspends, first found in the order node, agent, instance, user) and the merged narrowing."""

    suspension: KillEntry | None
    narrowing: Narrowing | None


class KillList:
    """The kill state in memory, fed by snapshots and events; reads take no lock (each read
    sees one dict, replaced whole on every change)."""

    def __init__(self) -> None:
        self._entries: dict[KillTarget, tuple[KillEntry, ...]] = {}
        self.last_event_id = 0

    def load(self, state: KillState) -> None:
        grouped: dict[KillTarget, list[KillEntry]] = {}
        for entry in state.entries:
            grouped.setdefault(entry.target, []).append(entry)
        self._entries = {t: tuple(es) for t, es in grouped.items()}
        self.last_event_id = state.last_event_id

    def apply(self, event: SignalEvent) -> bool:
        """Apply one event; False (and nothing changes) when it is not newer than the list."""
        if event.id <= self.last_event_id:
            return False
        entries = dict(self._entries)
        if event.entries:
            entries[event.target] = event.entries
        else:
            entries.pop(event.target, None)
        self._entries = entries
        self.last_event_id = event.id
        return True

    def snapshot(self) -> KillState:
        return KillState(self.last_event_id, tuple(
            e for t in sorted(self._entries) for e in self._entries[t]))

    def entries(self, target: KillTarget | None = None) -> tuple[KillEntry, ...]:
        if target is not None:
            return self._entries.get(target, ())
        return self.snapshot().entries

    def __len__(self) -> int:
        return len(self._entries)

    def restriction(self, targets: Iterable[KillTarget]) -> Restriction | None:
        """The suspension and merged narrowing in force on any of ``targets``."""
        table = self._entries
        if not table:
            return None
        suspension: KillEntry | None = None
        narrowing: Narrowing | None = None
        for target in targets:
            for entry in table.get(target, ()):
                if entry.action is KillAction.SUSPEND:
                    suspension = suspension or entry
                elif entry.narrowing is not None:
                    narrowing = (entry.narrowing if narrowing is None
                                 else narrowing.merged(entry.narrowing))
        if suspension is None and narrowing is None:
            return None
        return Restriction(suspension, narrowing)

    def for_workload(self, spiffe_id: str, node: str | None = None) -> Restriction | None:
        """The restriction on a workload by its SPIFFE ID (``/agent/<name>/instance/<id>``
        names the agent and the instance) and the node it runs on."""
        return self.restriction(targets_of(spiffe_id=spiffe_id, node=node))


def targets_of(*, spiffe_id: str | None = None, agent: str | None = None,
               user: str | None = None, node: str | None = None) -> list[KillTarget]:
    """The targets a request's principals fall under, cheaply (no validation: a value that
    would not make a valid target simply matches nothing)."""
    out: list[KillTarget] = []
    if node:
        out.append(_raw(TargetKind.NODE, node))
    if spiffe_id:
        parts = spiffe_id.split("/")
        # spiffe: '' td agent name instance id
        if len(parts) == 7 and parts[3] == "agent" and parts[5] == "instance":
            agent = agent or parts[4]
            out.append(_raw(TargetKind.INSTANCE, spiffe_id))
        elif len(parts) >= 5 and parts[3] == "agent":
            agent = agent or parts[4]
    if agent:
        out.append(_raw(TargetKind.AGENT, agent))
    if user:
        out.append(_raw(TargetKind.USER, user.lower()))
    return out


def _raw(kind: TargetKind, value: str) -> KillTarget:
    target = object.__new__(KillTarget)
    object.__setattr__(target, "kind", kind)
    object.__setattr__(target, "value", value)
    return target


def entries_json(entries: Sequence[KillEntry]) -> list[dict[str, Any]]:
    return [e.to_json() for e in entries]
