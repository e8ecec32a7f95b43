"""The AS's agent and user ports over the registry and the directory."""

from __future__ import annotations

from tabard.directory import DirectoryService
from tabard.oauth.ports import AgentFacts
from tabard.registry import AgentNotFoundError, AgentService, ChangeKind

__all__ = ["DirectoryUsers", "RegistryAgents"]


class RegistryAgents:
    def __init__(self, agents: AgentService) -> None:
        self._agents = agents

    def agent(self, name: str) -> AgentFacts | None:
        try:
            definition = self._agents.get(name)
            pending = self._agents.changes(name, pending_only=True)
        except AgentNotFoundError:
            return None
        return AgentFacts(
            name=definition.name,
            state=definition.state.value,
            issues_identities=definition.state.issues_identities,
            delegation=definition.delegation.value,
            checksum=definition.checksum,
            checksum_pending=any(c.kind is ChangeKind.CHECKSUM_CHANGE for c in pending),
        )


class DirectoryUsers:
    def __init__(self, people: DirectoryService) -> None:
        self._people = people

    def user_active(self, user_name: str) -> bool | None:
        person = self._people.find_person(user_name)
        if person is None:
            return None
        return person.active and person.is_person
