"""Audit records: what one security-relevant event says, and its exact bytes.

An :class:`AuditEvent` is what a caller hands to :meth:`tabard.audit.AuditLog.append`; the
log numbers it, chains it and stores it as an :class:`AuditRecord`. The fields are the ones a
regulator asks of automatically generated logs (EU AI Act Art. 12): **who** (agent instance,
definition, owner, user, delegation chain), **what** (operation and target), **when**, the
**decision** and the policies behind it, and the **outcome**.

Entry bytes (what the hash chain and the Merkle tree cover), version 1::

    0x01 || prev (32 bytes) || seq (8 bytes, big-endian) || JCS(body)

``prev`` is the hash of the previous record (32 zero bytes before the first), ``seq`` counts
from 1 without gaps, and ``body`` is the event as a JSON object in RFC 8785 canonical form
(:data:`body` keys: ``time``, ``kind``, ``actor``, ``who``, ``what``, ``decision``,
``outcome``, ``details``). A record's hash is its RFC 9162 leaf hash,
``SHA-256(0x00 || entry)``: the same 32 bytes link the chain and are the Merkle leaf. The
fixed binary header lets a verifier check the chain by slicing, without parsing JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

import rfc8785

from tabard.audit.errors import InvalidAuditEventError
from tabard.audit.merkle import HASH_SIZE, leaf_hash

__all__ = [
    "ENTRY_VERSION",
    "GENESIS",
    "HASH_SIZE",
    "AuditEvent",
    "AuditKind",
    "AuditRecord",
    "Decision",
    "Outcome",
    "What",
    "Who",
    "canonical_json",
    "encode_entry",
]

ENTRY_VERSION = 1
GENESIS = bytes(HASH_SIZE)
HEADER_SIZE = 1 + HASH_SIZE + 8
_MAX_SAFE = 2**53 - 1


class AuditKind(StrEnum):
    ISSUANCE = "issuance"
    TOKEN_GRANT = "token_grant"
    GATEWAY_DECISION = "gateway_decision"
    LIFECYCLE = "lifecycle"
    ADMIN_ACTION = "admin_action"
    KILL_SWITCH = "kill_switch"
    APPROVAL = "approval"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    PENDING = "pending"
    """Recorded before the action runs (intent); a later record gives the outcome."""
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Who:
    """On whose behalf and by which identity. ``chain`` lists the delegation from the first
    principal (nearest the user) to the current actor: SPIFFE IDs of agent instances or
    definitions, or user names."""

    agent: str | None = None
    instance: str | None = None
    spiffe_id: str | None = None
    owner: str | None = None
    user: str | None = None
    chain: tuple[str, ...] = ()
    node: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("agent", "instance", "spiffe_id", "owner", "user", "node"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.chain:
            out["chain"] = list(self.chain)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Who:
        return cls(agent=data.get("agent"), instance=data.get("instance"),
                   spiffe_id=data.get("spiffe_id"), owner=data.get("owner"),
                   user=data.get("user"), chain=tuple(data.get("chain", ())),
                   node=data.get("node"))

    @classmethod
    def of_spiffe_id(cls, spiffe_id: str, **fields: Any) -> Who:
        """Who, for a workload: ``/agent/<name>[/instance/<id>]`` paths name the agent and
        the instance."""
        agent, instance = agent_of(spiffe_id)
        fields.setdefault("agent", agent)
        fields.setdefault("instance", instance)
        return cls(spiffe_id=spiffe_id, **fields)

    def subjects(self) -> set[str]:
        """Index keys of everyone this names (``agent:``, ``instance:``, ``user:``), the
        delegation chain included: what ``tabard audit trace`` looks records up by."""
        keys: set[str] = set()
        if self.agent:
            keys.add(f"agent:{self.agent}")
        if self.instance:
            keys.add(f"instance:{self.instance}")
        if self.user:
            keys.add(f"user:{self.user}")
        for principal in (self.spiffe_id, *self.chain):
            if not principal:
                continue
            if principal.startswith("spiffe://"):
                agent, instance = agent_of(principal)
                if agent:
                    keys.add(f"agent:{agent}")
                if instance:
                    keys.add(f"instance:{instance}")
            else:
                keys.add(f"user:{principal}")
        return keys


@lru_cache(maxsize=4096)
def agent_of(spiffe_id: str) -> tuple[str | None, str | None]:
    """(agent name, instance id) of ``spiffe://td/agent/<name>[/instance/<id>]`` (cached:
    the same workloads are named in record after record)."""
    _, _, rest = spiffe_id.partition("://")
    parts = rest.split("/")[1:]
    if len(parts) >= 2 and parts[0] == "agent":
        instance = parts[3] if len(parts) >= 4 and parts[2] == "instance" else None
        return parts[1], instance
    return None, None


@dataclass(frozen=True, slots=True, kw_only=True)
class What:
    """The operation (``svid.x509``, ``tools/call``, ``POST /api/v1/agents``, ...) and what
    it acted on."""

    operation: str
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"operation": self.operation} | ({"target": self.target} if self.target else {})


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """An authorization decision and the policies that made it."""

    effect: str
    policies: tuple[str, ...] = ()
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"effect": self.effect, "policies": list(self.policies)}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One event to record. ``actor`` is who performed the recorded action (an admin
    token's name, a node's SPIFFE ID, ``tabard`` for the server itself); ``details`` is
    any JSON object (integers within ±2**53, no floats that JSON cannot carry exactly)."""

    kind: AuditKind | str
    actor: str
    what: What
    who: Who = field(default_factory=Who)
    decision: Decision | None = None
    outcome: Outcome | str = Outcome.SUCCESS
    details: Mapping[str, Any] = field(default_factory=dict)

    def body(self, at: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": format_time(at), "kind": str(self.kind), "actor": self.actor,
            "who": self.who.to_json(), "what": self.what.to_json(),
            "outcome": str(self.outcome), "details": dict(self.details),
        }
        if self.decision is not None:
            out["decision"] = self.decision.to_json()
        return out

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AuditEvent:
        decision = body.get("decision")
        what = body.get("what", {})
        return cls(
            kind=body["kind"], actor=body["actor"],
            what=What(operation=what.get("operation", ""), target=what.get("target")),
            who=Who.from_json(body.get("who", {})),
            decision=Decision(effect=decision["effect"],
                              policies=tuple(decision.get("policies", ())),
                              reason=decision.get("reason")) if decision else None,
            outcome=body.get("outcome", ""), details=body.get("details", {}),
        )


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with microseconds: ``2026-01-01T12:00:00.000000Z``."""
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    # an aware UTC time ends in "+00:00"; naive ones were taken as local time above
    return at.isoformat(timespec="microseconds")[:26] + "Z"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _plain(value: Any) -> bool:
    """True when ``json.dumps(sort_keys=True)`` already gives the RFC 8785 form: objects with
    ASCII keys, strings, booleans, null and integers JavaScript holds exactly."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE <= value <= _MAX_SAFE)
    if kind is dict:
        # the usual details: a flat object of strings and small integers, checked inline
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                return False
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            if t is int:
                if not -_MAX_SAFE <= v <= _MAX_SAFE:
                    return False
            elif not _plain(v):
                return False
        return True
    if isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return -_MAX_SAFE <= value <= _MAX_SAFE
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and k.isascii() and _plain(v) for k, v in value.items())
    return False


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``value``.

    The ``rfc8785`` package is the reference; it is pure Python and costs ~100 µs for a
    typical record, a fifth of the append budget. For the values records are made of
    (ASCII keys, strings, safe integers, booleans, null) the standard library's sorted,
    compact, non-ASCII-preserving ``json.dumps`` produces the same bytes (same key order,
    same string escapes: ``\\"``, ``\\\\``, ``\\b\\f\\n\\r\\t``, ``\\u00xx`` for the other
    controls), ~6 times faster; anything else (floats, non-ASCII keys) goes to ``rfc8785``.
    ``tests/unit/audit/test_record.py`` holds the two to the same output."""
    if _plain(value):
        try:
            return _ENCODER.encode(value).encode()
        except UnicodeEncodeError:
            raise InvalidAuditEventError("a string is not valid Unicode "
                                         "(lone surrogate)") from None
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidAuditEventError(f"the event cannot be written as canonical JSON: "
                                     f"{exc}") from None


def encode_entry(seq: int, prev: bytes, body: bytes) -> bytes:
    """The entry bytes of record ``seq`` (module docstring)."""
    return b"\x01" + prev + seq.to_bytes(8, "big") + body


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored record: ``entry`` is authoritative, the rest is read from it."""

    seq: int
    time: datetime
    kind: str
    entry: bytes
    hash: bytes

    @property
    def prev(self) -> bytes:
        return self.entry[1:1 + HASH_SIZE]

    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.entry[HEADER_SIZE:])
        return parsed

    def event(self) -> AuditEvent:
        return AuditEvent.from_body(self.body())

    def to_json(self) -> dict[str, Any]:
        """The export form: enough to rebuild the entry bytes and check the hash."""
        return {"seq": self.seq, "prev": self.prev.hex(), "hash": self.hash.hex(),
                "record": self.body()}

    def intact(self) -> bool:
        return leaf_hash(self.entry) == self.hash


class PreparedEvent(NamedTuple):
    """An event turned into canonical body bytes and index keys in the caller's thread, so
    a bad event fails its caller alone and the writer only chains and stores. (A tuple: made
    once per record, on the append path.)"""

    time: datetime
    kind: str
    body: bytes
    subjects: tuple[str, ...]


_str = json.encoder.encode_basestring


def _body_json(event: AuditEvent, at: datetime) -> bytes:
    """``canonical_json(event.body(at))``, written field by field: the top level and
    ``who``/``what``/``decision`` have fixed ASCII keys, emitted here in RFC 8785 order, and
    their values are strings; only ``details`` goes through :func:`canonical_json`. Several
    times faster than building the dict and serialising it (the tests hold the two equal).
    A field that is not a string fails in the C string encoder (``TypeError``)."""
    return _prepared(event, at)[0]


def _prepared(event: AuditEvent, at: datetime) -> tuple[bytes, tuple[str, ...]]:
    """The body bytes and the trace keys of ``event``."""
    try:
        who, subjects = _who(event.who)
        return _body_text(event, at, who).encode(), subjects
    except TypeError:
        raise InvalidAuditEventError("who, what and decision fields must be strings") from None
    except UnicodeEncodeError:
        raise InvalidAuditEventError("a string is not valid Unicode (lone surrogate)") from None


def _who_text(w: Who) -> str:
    s = _str
    who = []
    if w.agent is not None:
        who.append('"agent":' + s(w.agent))
    if w.chain:
        who.append('"chain":[' + ",".join([s(p) for p in w.chain]) + "]")
    if w.instance is not None:
        who.append('"instance":' + s(w.instance))
    if w.node is not None:
        who.append('"node":' + s(w.node))
    if w.owner is not None:
        who.append('"owner":' + s(w.owner))
    if w.spiffe_id is not None:
        who.append('"spiffe_id":' + s(w.spiffe_id))
    if w.user is not None:
        who.append('"user":' + s(w.user))
    return ",".join(who)


def _who_uncached(w: Who) -> tuple[str, tuple[str, ...]]:
    return _who_text(w), tuple(sorted(w.subjects()))


_who_cached = lru_cache(maxsize=4096)(_who_uncached)


def _who(w: Who) -> tuple[str, tuple[str, ...]]:
    """The JSON members of ``who`` and its trace keys, cached by value: the same workloads
    and users are named in record after record."""
    try:
        return _who_cached(w)
    except TypeError:  # unhashable (a list for a chain), or a field that is not a string
        return _who_uncached(w)


_last_time: tuple[datetime, str] = (datetime.min.replace(tzinfo=UTC), "")
_last_second: tuple[datetime, str] = (datetime.min.replace(tzinfo=UTC), "")


def _time_text(at: datetime) -> str:
    """:func:`format_time`, remembering the last time and the last second: the events of
    one ``append_many`` share their time, and concurrent appends their second (then only
    the microseconds are written)."""
    global _last_time, _last_second
    last = _last_time
    if last[0] == at and last[0].tzinfo is at.tzinfo:
        return last[1]
    if at.tzinfo is UTC:
        second = at.replace(microsecond=0)
        cached = _last_second
        if cached[0] == second:
            text = cached[1] + f"{at.microsecond:06d}Z"
        else:
            text = format_time(at)
            _last_second = (second, text[:20])
    else:
        text = format_time(at)
    _last_time = (at, text)
    return text


def _flat_json(obj: Mapping[str, Any]) -> str | None:
    """The RFC 8785 text of a flat object (ASCII keys; string, safe integer, boolean and
    null values), the usual ``details``; ``None`` for anything else. Written here because
    the ``json`` encoder costs several microseconds of set-up per call."""
    try:
        keys = sorted(obj)
    except TypeError:
        return None
    s = _str
    out = []
    for k in keys:
        if type(k) is not str or not k.isascii():
            return None
        v = obj[k]
        t = type(v)
        if t is str:
            out.append(s(k) + ":" + s(v))
        elif t is int and -_MAX_SAFE <= v <= _MAX_SAFE:
            out.append(s(k) + ":" + int.__repr__(v))
        elif t is bool:
            out.append(s(k) + (":true" if v else ":false"))
        elif v is None:
            out.append(s(k) + ":null")
        else:
            return None
    return "{" + ",".join(out) + "}"


def _decision_text(d: Decision) -> str:
    s = _str
    return (',"decision":{"effect":' + s(d.effect) + ',"policies":['
            + ",".join([s(p) for p in d.policies])
            + (']}' if not d.reason else '],"reason":' + s(d.reason) + "}"))


def _what_text(w: What) -> str:
    return ('{"operation":' + _str(w.operation)
            + (',"target":' + _str(w.target) if w.target else "") + "}")


_decision_cached = lru_cache(maxsize=1024)(_decision_text)
_what_cached = lru_cache(maxsize=4096)(_what_text)


def _cached(cached: Any, plain: Any, value: Any) -> str:
    """``cached(value)``, or ``plain(value)`` for a value that cannot be a cache key (a
    list where a tuple is expected, say) or is not written as it should be."""
    try:
        text: str = cached(value)
    except TypeError:
        text = plain(value)
    return text


def _body_text(event: AuditEvent, at: datetime, who: str) -> str:
    """The body's canonical JSON; ``decision`` and ``what`` are cached by value (the same
    few recur), ``details`` written by :func:`_flat_json` when it can."""
    s = _str
    d = event.decision
    details = event.details
    return "".join((
        '{"actor":', s(event.actor),
        "" if d is None else _cached(_decision_cached, _decision_text, d),
        ',"details":', (_flat_json(details) or canonical_json(dict(details)).decode())
        if details else "{}",
        ',"kind":', s(str(event.kind)), ',"outcome":', s(str(event.outcome)),
        ',"time":"', _time_text(at), '","what":',
        _cached(_what_cached, _what_text, event.what), ',"who":{', who, "}}"))


def prepare(event: AuditEvent, at: datetime) -> PreparedEvent:
    if not isinstance(event.what, What) or not event.what.operation:
        raise InvalidAuditEventError("an audit event needs what.operation")
    if not event.actor:
        raise InvalidAuditEventError("an audit event needs an actor")
    if not isinstance(event.details, Mapping):
        raise InvalidAuditEventError("details must be a JSON object")
    body, subjects = _prepared(event, at)
    return PreparedEvent(at, str(event.kind), body, subjects)
