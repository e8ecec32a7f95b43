"""The values of a blended decision: what is asked, and what is answered.

A :class:`DecisionRequest` names the agent instance (its SPIFFE ID), the user it acts for
(or none), the delegation chain (each hop's actor and granted :class:`Scope`), the action,
the resource and a typed context. A :class:`Decision` is the effect, its obligations, the
reasons in words (never policy text), the ids of the policies that decided on each side,
the delegation mode applied, and whether it came from the decision cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tabard.policy.errors import InvalidDecisionRequestError
from tabard.policy.schema import ResourceType, action_info
from tabard.policy.scopes import Scope

__all__ = [
    "MAX_CHAIN",
    "Decision",
    "DecisionRequest",
    "Effect",
    "Hop",
    "Obligation",
    "RequestContext",
    "ResourceRef",
]

MAX_CHAIN = 16
MAX_RISK = 1_000_000
MAX_ARGUMENTS = 64
_MAX_TEXT = 2048


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class Obligation(StrEnum):
    """What an allow asks of the enforcer: redact the answer, refuse changes, or hold the
    request for a human's approval."""

    REDACT = "redact"
    READ_ONLY = "read_only"
    REQUIRE_APPROVAL = "require_approval"


def _text(what: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty) or len(value) > _MAX_TEXT:
        raise InvalidDecisionRequestError(f"{what} must be a string of 1-{_MAX_TEXT} "
                                          "characters")
    return value


def _resource_type(value: object) -> ResourceType:
    try:
        return ResourceType(str(value).removeprefix("Tabard::"))
    except ValueError:
        kinds = ", ".join(t.value for t in ResourceType)
        raise InvalidDecisionRequestError(
            f"resource type {value!r} must be one of {kinds}") from None


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """``Tool::jira.create_issue``: a resource type of the schema and an id."""

    type: ResourceType
    id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", _resource_type(self.type))
        _text("resource id", self.id)

    @classmethod
    def parse(cls, text: str) -> ResourceRef:
        kind, sep, name = _text("resource", text).partition("::")
        if not sep:
            raise InvalidDecisionRequestError(f"resource {text!r} must be TYPE::ID, e.g. "
                                              "Tool::jira.create_issue")
        return cls(_resource_type(kind), name.strip('"'))

    def __str__(self) -> str:
        return f"{self.type.value}::{self.id}"


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop of a delegation chain: who acted, and the scope it was granted."""

    actor: str
    scope: Scope = field(default_factory=Scope.unrestricted)

    def __post_init__(self) -> None:
        _text("hop actor", self.actor)


def _argument(name: object, value: object) -> str:
    if not isinstance(name, str) or not name or "=" in name:
        raise InvalidDecisionRequestError("argument names are non-empty strings without '='")
    rendered = value if isinstance(value, str) else json.dumps(
        value, sort_keys=True, separators=(",", ":"))
    return f"{name}={rendered}"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The typed context: a risk score (0 when none), the concrete HTTP path, and tool
    arguments as ``name=value`` strings (see :mod:`tabard.policy.schema`)."""

    risk: int = 0
    path: str | None = None
    arguments: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if isinstance(self.risk, bool) or not isinstance(self.risk, int) or not (
                0 <= self.risk <= MAX_RISK):
            raise InvalidDecisionRequestError(f"context risk must be an integer from 0 to "
                                              f"{MAX_RISK}")
        if self.path is not None and not _text("context path", self.path).startswith("/"):
            raise InvalidDecisionRequestError("context path must start with /")
        if len(self.arguments) > MAX_ARGUMENTS:
            raise InvalidDecisionRequestError(f"at most {MAX_ARGUMENTS} arguments")

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> RequestContext:
        """``{"risk": 30, "path": "/repos/x", "arguments": {"project": "SEC"}}``."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise InvalidDecisionRequestError("context must be a JSON object")
        unknown = set(value) - {"risk", "path", "arguments"}
        if unknown:
            raise InvalidDecisionRequestError(f"unknown context keys {sorted(unknown)} "
                                              "(risk, path, arguments)")
        arguments = value.get("arguments") or {}
        if not isinstance(arguments, Mapping):
            raise InvalidDecisionRequestError("context arguments must be a JSON object")
        return cls(risk=value.get("risk", 0), path=value.get("path"),
                   arguments=frozenset(_argument(k, v) for k, v in arguments.items()))

    def as_dict(self) -> dict[str, Any]:
        return {"risk": self.risk, "path": self.path, "arguments": sorted(self.arguments)}


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    agent: str
    user: str | None
    action: str
    resource: ResourceRef
    chain: tuple[Hop, ...] = ()
    context: RequestContext = RequestContext()

    def __post_init__(self) -> None:
        _text("agent", self.agent)
        if self.user is not None:
            _text("user", self.user)
        info = action_info(self.action) if isinstance(self.action, str) else None
        if info is None:
            raise InvalidDecisionRequestError(
                f"unknown action {self.action!r} (MCP tools/call, resources/read, prompts/get; "
                "A2A methods such as message/send; HTTP methods such as GET)")
        if info.resource is not self.resource.type:
            raise InvalidDecisionRequestError(
                f"action {self.action} applies to {info.resource.value} resources, not "
                f"{self.resource.type.value}")
        if len(self.chain) > MAX_CHAIN:
            raise InvalidDecisionRequestError(f"a delegation chain has at most {MAX_CHAIN} "
                                              "hops")

    @classmethod
    def build(cls, *, agent: str, user: str | None, action: str, resource: str,
              context: Mapping[str, Any] | None = None,
              scopes: Sequence[str | None] = (), actors: Sequence[str] = ()
              ) -> DecisionRequest:
        """From plain values: ``resource`` as ``TYPE::ID``, one scope string per hop (the
        hop's actor from ``actors``, else the agent)."""
        chain = tuple(Hop(actors[i] if i < len(actors) else agent, Scope.parse(s))
                      for i, s in enumerate(scopes))
        return cls(agent=agent, user=user or None, action=action,
                   resource=ResourceRef.parse(resource), chain=chain,
                   context=RequestContext.from_json(context))

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "user": self.user, "action": self.action,
                "resource": str(self.resource),
                "chain": [{"actor": h.actor, "scope": h.scope.claim()} for h in self.chain],
                "context": self.context.as_dict()}


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    obligations: tuple[Obligation, ...]
    reasons: tuple[str, ...]
    agent_policies: tuple[str, ...]
    user_policies: tuple[str, ...]
    delegation: str | None
    policy_epoch: int
    cached: bool = False

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Decision:
        """The inverse of :meth:`as_dict` (what ``POST /api/v1/decisions`` answers)."""
        policies = value.get("policies") or {}
        return cls(Effect(value["decision"]),
                   tuple(Obligation(o) for o in value.get("obligations", ())),
                   tuple(value.get("reasons", ())), tuple(policies.get("agent", ())),
                   tuple(policies.get("user", ())), value.get("delegation"),
                   int(value.get("policy_epoch", 0)), bool(value.get("cached", False)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.effect.value,
            "obligations": [o.value for o in self.obligations],
            "reasons": list(self.reasons),
            "policies": {"agent": list(self.agent_policies), "user": list(self.user_policies)},
            "delegation": self.delegation,
            "policy_epoch": self.policy_epoch,
            "cached": self.cached,
        }
