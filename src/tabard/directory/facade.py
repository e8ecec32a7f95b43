"""The directory as the interfaces see it: people, their SCIM endpoint and its tokens."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tabard.clock import Clock
from tabard.directory.ports import GroupStore, UserStatusListener, UserStore
from tabard.directory.scim import ScimService
from tabard.directory.scim_tokens import ScimTokenService, ScimTokenStore
from tabard.directory.service import DirectoryService

__all__ = ["Directory"]


@dataclass(frozen=True, slots=True)
class Directory:
    people: DirectoryService
    scim: ScimService
    scim_tokens: ScimTokenService

    @classmethod
    def build(cls, users: UserStore, groups: GroupStore, tokens: ScimTokenStore, clock: Clock,
              *, listeners: Iterable[UserStatusListener] = (),
              max_results: int = 1000) -> Directory:
        people = DirectoryService(users, groups, clock, listeners)
        return cls(people, ScimService(people, max_results=max_results),
                   ScimTokenService(tokens, clock))

