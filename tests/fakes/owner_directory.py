"""An in-memory :class:`~tabard.registry.ports.OwnerDirectory` for tests of the registry."""

from __future__ import annotations

from tabard.registry import DirectoryPerson

__all__ = ["FakeOwnerDirectory"]


class FakeOwnerDirectory:
    """People by user name (case-insensitive, like SCIM ``userName``); groups are unknown."""

    def __init__(self) -> None:
        self._people: dict[str, DirectoryPerson] = {}
        self.lookups = 0

    def add(self, user_name: str, *, active: bool = True, is_person: bool = True,
            roles: frozenset[str] | set[str] = frozenset()) -> DirectoryPerson:
        person = DirectoryPerson(user_name, active, is_person, frozenset(roles))
        self._people[user_name.casefold()] = person
        return person

    def set_active(self, user_name: str, active: bool) -> None:
        person = self._people[user_name.casefold()]
        self._people[user_name.casefold()] = DirectoryPerson(
            person.user_name, active, person.is_person, person.roles)

    def remove(self, user_name: str) -> None:
        del self._people[user_name.casefold()]

    def find_person(self, user_name: str) -> DirectoryPerson | None:
        self.lookups += 1
        return self._people.get(user_name.casefold())
