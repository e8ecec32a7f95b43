"""What the directory needs from the outside (stores) and what it tells it (status changes).

``tabard.store`` implements the stores in SQL. The listener port is how the registry's orphan
detection learns that an owner left, without the directory importing the registry: the
composition root (``tabard.app``) subscribes it. Only directory values cross these ports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from tabard.directory.model import DirectoryGroup, DirectoryUser

__all__ = ["GroupStore", "UserStatusListener", "UserStore"]

_Users = list[DirectoryUser]
_Groups = list[DirectoryGroup]


class UserStatusListener(Protocol):
    def user_status_changed(self, user_name: str, active: bool, deleted: bool,
                            at: datetime) -> None:
        """Called after a user was deactivated, reactivated or deleted (``deleted`` true,
        ``active`` false), however it happened (SCIM PUT, PATCH, DELETE or the CLI)."""
        ...


class UserStore(Protocol):
    """Users, unique by ``id`` and by ``userName`` compared case-insensitively.

    ``update`` and ``delete`` are conditional on the version the caller read (optimistic
    concurrency): they return False when the stored version differs or the user is gone.
    """

    def add(self, user: DirectoryUser) -> None:
        """Insert; a taken ``userName``: :class:`~tabard.directory.errors.DuplicateUserError`."""
        ...

    def get(self, user_id: str) -> DirectoryUser | None: ...

    def find_by_name(self, user_name: str) -> DirectoryUser | None:
        """By ``userName``, case-insensitively."""
        ...

    def list(self) -> _Users:
        """Every user, oldest first (creation time, then id): a stable order for paging."""
        ...

    def update(self, user: DirectoryUser, expected_version: int) -> bool:
        """Replace the stored user if its version is ``expected_version``; ``user`` carries
        the new version. A taken ``userName``: ``DuplicateUserError``."""
        ...

    def delete(self, user_id: str, expected_version: int, at: datetime) -> bool:
        """Delete if at ``expected_version``, and remove the user from every group in the same
        transaction (each such group's version goes up, ``updated_at`` becomes ``at``)."""
        ...


class GroupStore(Protocol):
    """Groups, unique by ``id`` and by ``displayName`` compared case-insensitively, with
    their members. A member that does not exist (or stops existing) is never stored."""

    def add(self, group: DirectoryGroup) -> None:
        """Insert with members. A taken name: ``DuplicateGroupError``; a member that does not
        exist: ``InvalidValueError``."""
        ...

    def get(self, group_id: str) -> DirectoryGroup | None: ...

    def find_by_name(self, display_name: str) -> DirectoryGroup | None: ...

    def list(self) -> _Groups:
        """Every group, oldest first (creation time, then id)."""
        ...

    def update(self, group: DirectoryGroup, expected_version: int) -> bool:
        """Replace the stored group and its members if at ``expected_version``."""
        ...

    def delete(self, group_id: str, expected_version: int, at: datetime) -> bool:
        """Delete if at ``expected_version``, and remove it from every group it is a member
        of (each such group's version goes up)."""
        ...

    def containing(self, member_id: str) -> _Groups:
        """The groups that list ``member_id`` (a user's or group's id) directly."""
        ...
