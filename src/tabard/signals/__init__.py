"""The kill switch and its signal stream (``docs/design/kill-switch.md``).

    switch = KillSwitch(store, hub, clock, audit=audit, effects=effects)
    switch.suspend(KillTarget(TargetKind.AGENT, "trading"), actor="admin:alice",
                   reason="incident 42")
    hub.kill_list.for_workload("spiffe://example.org/agent/trading/instance/7")  # suspended

Every change is an event of one log with strictly increasing ids (stored in SQL, published
in-process by :class:`SignalHub`, between replicas by PostgreSQL ``LISTEN/NOTIFY``), sent to
nodes and gateways as server-sent events; :class:`SignalFollower` is their client.
"""

from tabard.signals.errors import InvalidKillError, KillConflictError, KillTargetNotFoundError
from tabard.signals.follower import SignalFollower
from tabard.signals.hooks import SuspendHookRunner
from tabard.signals.hub import SignalHub, Subscriber
from tabard.signals.model import (
    KillAction,
    KillEntry,
    KillList,
    KillState,
    KillTarget,
    Narrowing,
    Restriction,
    SignalEvent,
    TargetKind,
    targets_of,
)
from tabard.signals.ports import Change, HookRunner, KillAudit, KillEffects, SignalStore
from tabard.signals.service import KillSwitch
from tabard.signals.sse import SseMessage, SseParser, encode_comment, encode_message

__all__ = [
    "Change",
    "HookRunner",
    "InvalidKillError",
    "KillAction",
    "KillAudit",
    "KillConflictError",
    "KillEffects",
    "KillEntry",
    "KillList",
    "KillState",
    "KillSwitch",
    "KillTarget",
    "KillTargetNotFoundError",
    "Narrowing",
    "Restriction",
    "SignalEvent",
    "SignalFollower",
    "SignalHub",
    "SignalStore",
    "SseMessage",
    "SseParser",
    "Subscriber",
    "SuspendHookRunner",
    "TargetKind",
    "encode_comment",
    "encode_message",
    "targets_of",
]
