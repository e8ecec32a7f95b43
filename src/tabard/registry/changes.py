"""Change notification for agent definitions: an :class:`AgentStore` that says when it wrote.

Every service that changes an agent (its lifecycle, its tools, pending changes, flags set by
orphan detection or retirement) writes through the one store, so wrapping it tells
listeners about every change, whichever service made it. The policy engine subscribes, so
no decision is answered from a cache that predates the change. Listeners run after the
write committed, in the writer's thread; a failing listener is logged and skipped.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Collection, Sequence

from tabard.registry.agents import (
    AgentDefinition,
    AgentEvent,
    AgentQuery,
    AgentState,
    EventDraft,
    PendingChange,
    RetirementStep,
)
from tabard.registry.ports import AgentStore

__all__ = ["AgentChangeListener", "ObservedAgentStore"]

log = logging.getLogger("tabard.registry")

AgentChangeListener = Callable[[str], None]
"""Called with the name of an agent whose definition, changes or steps were written."""


class ObservedAgentStore:
    def __init__(self, inner: AgentStore) -> None:
        self._inner = inner
        self._listeners: builtins.list[AgentChangeListener] = []

    def subscribe(self, listener: AgentChangeListener) -> None:
        self._listeners.append(listener)

    def _changed(self, name: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name)
            except Exception:
                log.exception("agent change listener failed", extra={"agent": name})

    # --- writes ----------------------------------------------------------------------------

    def add(self, agent: AgentDefinition, events: Sequence[EventDraft]) -> AgentDefinition:
        stored = self._inner.add(agent, events)
        self._changed(agent.name)
        return stored

    def remove_unused(self, name: str) -> bool:
        removed = self._inner.remove_unused(name)
        self._changed(name)
        return removed

    def save(self, agent: AgentDefinition, *, expected_version: int,
             events: Sequence[EventDraft] = (), changes: Sequence[PendingChange] = (),
             step: RetirementStep | None = None) -> AgentDefinition:
        stored = self._inner.save(agent, expected_version=expected_version, events=events,
                                  changes=changes, step=step)
        self._changed(agent.name)
        return stored

    def save_step(self, step: RetirementStep) -> None:
        self._inner.save_step(step)
        self._changed(step.agent)

    # --- reads -----------------------------------------------------------------------------

    def get(self, name: str) -> AgentDefinition | None:
        return self._inner.get(name)

    def list(self, query: AgentQuery) -> builtins.list[AgentDefinition]:
        return self._inner.list(query)

    def page(self, states: Collection[AgentState], *, after: str = "",
             limit: int = 1000) -> builtins.list[AgentDefinition]:
        return self._inner.page(states, after=after, limit=limit)

    def states(self, names: Collection[str]) -> dict[str, AgentState]:
        return self._inner.states(names)

    def events(self, name: str, *, after: int = 0) -> builtins.list[AgentEvent]:
        return self._inner.events(name, after=after)

    def changes(self, name: str, *, pending_only: bool = False) -> builtins.list[PendingChange]:
        return self._inner.changes(name, pending_only=pending_only)

    def steps(self, name: str) -> builtins.list[RetirementStep]:
        return self._inner.steps(name)
