"""What the blended decision needs to know about agents and people: the facts ports.

The policy package may not import the registry or the directory (they sit beside and above
it), so it declares here the little it reads from them; ``tabard.app`` fills the ports from
the registry and the directory. :class:`StaticFacts` fills them from plain values, for
``tabard policy test`` fixtures and for tests.

Agent states and delegation modes are the registry's values, as strings: states
``registered``, ``active``, ``pending_recertification``, ``suspended``, ``retiring``,
``retired``; modes ``hybrid``, ``impersonation``, ``agent_as_principal``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

from tabard.spiffe import SpiffeId, SpiffeIdError

__all__ = [
    "ACTING_STATES",
    "AgentFacts",
    "AgentFactsSource",
    "DelegationMode",
    "InstanceFacts",
    "KillFacts",
    "KillFactsSource",
    "StaticFacts",
    "UserFacts",
    "UserFactsSource",
    "agent_of_instance",
]

ACTING_STATES = frozenset({"active", "pending_recertification"})
"""Agent states in which an agent may act at all."""


class DelegationMode(StrEnum):
    """How an agent acts for people (the registry's ``Delegation`` values)."""

    HYBRID = "hybrid"
    IMPERSONATION = "impersonation"
    AGENT_AS_PRINCIPAL = "agent_as_principal"


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """An agent definition as the decision sees it: approved tools, tools waiting for
    recertification, and the flags the lifecycle sets."""

    name: str
    state: str
    delegation: DelegationMode
    tools: frozenset[str]
    pending_tools: frozenset[str] = frozenset()
    owner: str = ""
    tier: str = "dev"
    read_only: bool = False
    inbound_blocked: bool = False


@dataclass(frozen=True, slots=True)
class InstanceFacts:
    """A registered agent instance; ``retired`` once it may no longer act."""

    spiffe_id: str
    agent: str
    retired: bool = False
    node: str | None = None
    """The SPIFFE ID of the node the instance runs on, when known."""


@dataclass(frozen=True, slots=True)
class UserFacts:
    """A person: active or not, every group they are in (directly or through nested groups,
    by ``displayName``) and every role they hold."""

    user_name: str
    active: bool
    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()


class AgentFactsSource(Protocol):
    def agent(self, name: str) -> AgentFacts | None: ...

    def instance(self, spiffe_id: str) -> InstanceFacts | None: ...


class UserFactsSource(Protocol):
    def user(self, user_name: str) -> UserFacts | None: ...


@dataclass(frozen=True, slots=True)
class KillFacts:
    """What the kill switch says about a request's principals (``tabard.signals``, through
    ``tabard.app``): a suspension (its reason, in words) and the graduated response of a
    narrowing: read-only, blocked tool categories, approval above a risk level."""

    suspended: str | None = None
    read_only: bool = False
    blocked_categories: frozenset[str] = frozenset()
    approval_above: int | None = None


class KillFactsSource(Protocol):
    def restriction(self, *, agent: str, instance: str, user: str | None,
                    node: str | None) -> KillFacts | None:
        """None when nothing restricts these principals (the common case: keep it cheap)."""
        ...


@lru_cache(maxsize=4096)
def agent_of_instance(spiffe_id: str) -> tuple[SpiffeId, str] | None:
    """``(id, agent name)`` for ``spiffe://<td>/agent/<name>/instance/<id>``, else None."""
    try:
        parsed = SpiffeId.parse(spiffe_id)
    except SpiffeIdError:
        return None
    segments = parsed.segments
    if len(segments) == 4 and segments[0] == "agent" and segments[2] == "instance":
        return parsed, segments[1]
    return None


@dataclass
class StaticFacts:
    """Both ports over plain values. Every well-formed instance ID of a known agent counts as
    a registered instance (fixtures name agents, not processes)."""

    agents: Mapping[str, AgentFacts] = field(default_factory=dict)
    users: Mapping[str, UserFacts] = field(default_factory=dict)

    @classmethod
    def of(cls, agents: Iterable[AgentFacts] = (), users: Iterable[UserFacts] = ()
           ) -> StaticFacts:
        return cls({a.name: a for a in agents}, {u.user_name.lower(): u for u in users})

    def agent(self, name: str) -> AgentFacts | None:
        return self.agents.get(name)

    def instance(self, spiffe_id: str) -> InstanceFacts | None:
        found = agent_of_instance(spiffe_id)
        if found is None or found[1] not in self.agents:
            return None
        return InstanceFacts(spiffe_id, found[1])

    def user(self, user_name: str) -> UserFacts | None:
        return self.users.get(user_name.lower())
