"""The directory of humans: users, groups, roles, and the status changes others react to.

Writes are read-modify-write under optimistic concurrency: a change is computed from the
version read and stored only if that version is still current, else it is computed again
from the newer one (a client that named a version with ``If-Match`` gets
:class:`~tabard.directory.errors.PreconditionFailedError` instead). After a user is
deactivated, reactivated, renamed or deleted, every :class:`UserStatusListener` is told.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from tabard.clock import Clock
from tabard.directory.errors import (
    GroupNotFoundError,
    InvalidValueError,
    PreconditionFailedError,
    UserNotFoundError,
)
from tabard.directory.model import (
    DirectoryGroup,
    DirectoryUser,
    Member,
    MemberRef,
    Membership,
    Person,
    UserDetails,
    name_key,
)
from tabard.directory.ports import GroupStore, UserStatusListener, UserStore
from tabard.errors import Conflict

__all__ = ["PROVIDER_ATTRIBUTES", "DirectoryService", "GroupChange", "UserChange"]

log = logging.getLogger("tabard.directory")

PROVIDER_ATTRIBUTES = frozenset({"id", "meta", "schemas", "groups", "members", "password"})
"""Attributes never kept in a document: the service provider's own (``id``, ``meta``, a
user's ``groups``, a group's ``members``, which live in their own table), ``schemas`` (derived
on output) and ``password`` (tabard authenticates no human by password and stores none)."""

_ATTEMPTS = 8

UserChange = Callable[[DirectoryUser], Mapping[str, Any]]
"""Computes a user's new attributes from its current state."""
GroupChange = Callable[[DirectoryGroup], tuple[Mapping[str, Any], Sequence[MemberRef]]]
"""Computes a group's new attributes and members from its current state."""


def _document(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in attributes.items()
            if k not in PROVIDER_ATTRIBUTES and v is not None}


def _check_version(if_match: int | None, current: int) -> None:
    if if_match is not None and if_match != current:
        raise PreconditionFailedError(
            f"the resource is at version {current}, not {if_match}")


class DirectoryService:
    def __init__(self, users: UserStore, groups: GroupStore, clock: Clock,
                 listeners: Iterable[UserStatusListener] = ()) -> None:
        self._users = users
        self._groups = groups
        self._clock = clock
        self._listeners: list[UserStatusListener] = list(listeners)
        self._change_hooks: list[Callable[[], None]] = []

    def subscribe(self, listener: UserStatusListener) -> None:
        """Tell ``listener`` about every later deactivation, reactivation and deletion."""
        self._listeners.append(listener)

    def on_change(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` after every stored change of a user or a group (attributes,
        status, membership, creation, deletion): whatever derives from the directory (the
        policy engine's decision cache) is stale from then on."""
        self._change_hooks.append(hook)

    def _changed(self) -> None:
        for hook in list(self._change_hooks):
            try:
                hook()
            except Exception:
                log.exception("directory change hook failed")

    # --- users ----------------------------------------------------------------------------

    def create_user(self, attributes: Mapping[str, Any]) -> DirectoryUser:
        now = self._clock.now()
        user = DirectoryUser(id=str(uuid.uuid4()), attributes=_document(attributes),
                             created_at=now, updated_at=now)
        self._users.add(user)
        self._changed()
        return user

    def add_user(self, user_name: str, *, display_name: str | None = None,
                 emails: Sequence[str] = (), roles: Sequence[str] = (),
                 user_type: str | None = None, active: bool = True) -> DirectoryUser:
        """A user made by tabard itself (``tabard users create``), not by an identity
        provider: the same SCIM document a provider would send for these fields."""
        attributes: dict[str, Any] = {"userName": user_name, "active": active}
        if display_name:
            attributes["displayName"] = display_name
        if emails:
            attributes["emails"] = [{"value": e, "primary": i == 0} for i, e in enumerate(emails)]
        if roles:
            attributes["roles"] = [{"value": r} for r in roles]
        if user_type:
            attributes["userType"] = user_type
        return self.create_user(attributes)

    def get_user(self, user_id: str) -> DirectoryUser:
        user = self._users.get(user_id)
        if user is None:
            raise UserNotFoundError(f"no user with id {user_id!r}")
        return user

    def find_user(self, user_name: str) -> DirectoryUser | None:
        """By ``userName``, case-insensitively."""
        return self._users.find_by_name(user_name)

    def user_named(self, user_name: str) -> DirectoryUser:
        user = self._users.find_by_name(user_name)
        if user is None:
            raise UserNotFoundError(f"no user named {user_name!r}")
        return user

    def list_users(self) -> list[DirectoryUser]:
        return self._users.list()

    def update_user(self, user_id: str, change: UserChange, *,
                    if_match: int | None = None) -> DirectoryUser:
        """Apply ``change`` to the current user and store the result (unchanged attributes
        keep the version). ``if_match``: the version the client read."""
        for _ in range(_ATTEMPTS):
            current = self.get_user(user_id)
            _check_version(if_match, current.version)
            attributes = _document(change(current))
            if attributes == dict(current.attributes):
                return current
            updated = replace(current, attributes=attributes, updated_at=self._clock.now(),
                              version=current.version + 1)
            if self._users.update(updated, current.version):
                self._changed()
                self._after_user_change(current, updated)
                return updated
        raise Conflict("the user keeps changing; try again", code="write_conflict")

    def set_active(self, user_name: str, active: bool) -> DirectoryUser:
        """Deactivate or reactivate a user by name (``tabard users deactivate|activate``)."""
        user = self.user_named(user_name)
        return self.update_user(user.id, lambda u: {**u.attributes, "active": active})

    def delete_user(self, user_id: str, *, if_match: int | None = None) -> None:
        for _ in range(_ATTEMPTS):
            current = self.get_user(user_id)
            _check_version(if_match, current.version)
            at = self._clock.now()
            if self._users.delete(user_id, current.version, at):
                self._changed()
                self._notify(current.user_name, active=False, deleted=True, at=at)
                return
        raise Conflict("the user keeps changing; try again", code="write_conflict")

    def _after_user_change(self, old: DirectoryUser, new: DirectoryUser) -> None:
        at = new.updated_at
        if name_key(old.user_name) != name_key(new.user_name):
            # agents name their owner by userName: the old name no longer designates anyone
            self._notify(old.user_name, active=False, deleted=True, at=at)
        elif old.active != new.active:
            self._notify(new.user_name, active=new.active, deleted=False, at=at)

    def _notify(self, user_name: str, *, active: bool, deleted: bool, at: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener.user_status_changed(user_name, active, deleted, at)
            except Exception:
                # the change is stored; the periodic orphan sweep is the backstop
                log.exception("user status listener failed",
                              extra={"listener": type(listener).__name__})

    # --- groups ---------------------------------------------------------------------------

    def create_group(self, attributes: Mapping[str, Any],
                     members: Sequence[MemberRef] = ()) -> DirectoryGroup:
        now = self._clock.now()
        group_id = str(uuid.uuid4())
        group = DirectoryGroup(id=group_id, attributes=_document(attributes),
                               members=self._resolve(group_id, members),
                               created_at=now, updated_at=now)
        self._groups.add(group)
        self._changed()
        return group

    def get_group(self, group_id: str) -> DirectoryGroup:
        group = self._groups.get(group_id)
        if group is None:
            raise GroupNotFoundError(f"no group with id {group_id!r}")
        return group

    def find_group(self, display_name: str) -> DirectoryGroup | None:
        return self._groups.find_by_name(display_name)

    def list_groups(self) -> list[DirectoryGroup]:
        return self._groups.list()

    def update_group(self, group_id: str, change: GroupChange, *,
                     if_match: int | None = None) -> DirectoryGroup:
        for _ in range(_ATTEMPTS):
            current = self.get_group(group_id)
            _check_version(if_match, current.version)
            attributes, refs = change(current)
            document = _document(attributes)
            members = self._resolve(group_id, refs)
            if document == dict(current.attributes) and members == current.members:
                return current
            updated = replace(current, attributes=document, members=members,
                              updated_at=self._clock.now(), version=current.version + 1)
            if self._groups.update(updated, current.version):
                self._changed()
                return updated
        raise Conflict("the group keeps changing; try again", code="write_conflict")

    def delete_group(self, group_id: str, *, if_match: int | None = None) -> None:
        for _ in range(_ATTEMPTS):
            current = self.get_group(group_id)
            _check_version(if_match, current.version)
            if self._groups.delete(group_id, current.version, self._clock.now()):
                self._changed()
                return
        raise Conflict("the group keeps changing; try again", code="write_conflict")

    def _resolve(self, group_id: str, refs: Sequence[MemberRef]) -> tuple[Member, ...]:
        """Members as stored: existing users and groups, each once, the type checked, and no
        group containing itself through nesting."""
        members: dict[str, Member] = {}
        for ref in refs:
            if not ref.value:
                raise InvalidValueError("a member needs a value (the member's id)")
            if ref.value in members:
                continue
            claimed = (ref.type or "").strip().lower() or None
            if claimed not in (None, "user", "group"):
                raise InvalidValueError(f"member type {ref.type!r} is neither User nor Group")
            kind: str | None = None
            if claimed != "group" and self._users.get(ref.value) is not None:
                kind = "User"
            elif claimed != "user" and self._groups.get(ref.value) is not None:
                kind = "Group"
                if self._reaches(ref.value, group_id):
                    raise InvalidValueError(
                        f"group {ref.value} contains this group: nesting would loop")
            if kind is None:
                what = f"{ref.type} " if ref.type else ""
                raise InvalidValueError(f"member {what}{ref.value!r} does not exist")
            members[ref.value] = Member(ref.value, "User" if kind == "User" else "Group",
                                        ref.display)
        return tuple(members.values())

    def _reaches(self, start: str, target: str) -> bool:
        """Whether group ``start`` is ``target`` or contains it at any depth."""
        seen: set[str] = set()
        pending = [start]
        while pending:
            group_id = pending.pop()
            if group_id == target:
                return True
            if group_id in seen:
                continue
            seen.add(group_id)
            group = self._groups.get(group_id)
            if group is not None:
                pending.extend(m.value for m in group.members if m.type == "Group")
        return False

    # --- derived: memberships, roles, persons ---------------------------------------------

    def memberships(self, member_id: str) -> tuple[Membership, ...]:
        """The groups ``member_id`` belongs to: directly, then through nested groups."""
        return _walk(member_id, self._groups.containing)

    def membership_resolver(self) -> Callable[[str], tuple[Membership, ...]]:
        """:meth:`memberships` for many members at once: every group is read once, now."""
        containing: dict[str, list[DirectoryGroup]] = {}
        for group in self._groups.list():
            for member in group.members:
                containing.setdefault(member.value, []).append(group)
        return lambda member_id: _walk(member_id, lambda m: containing.get(m, []))

    def roles_of(self, user: DirectoryUser,
                 memberships: Sequence[Membership] | None = None) -> frozenset[str]:
        """The user's ``roles`` values and ``<role>`` of every ``tabard-<role>`` group the
        user is in (at any depth), lower-cased."""
        roles = {r.strip().lower() for r in user.roles if r.strip()}
        for membership in self.memberships(user.id) if memberships is None else memberships:
            if membership.group.role:
                roles.add(membership.group.role)
        return frozenset(roles)

    def describe(self, user_name: str) -> UserDetails:
        user = self.user_named(user_name)
        memberships = self.memberships(user.id)
        return UserDetails(user, memberships, self.roles_of(user, memberships))

    def find_person(self, user_name: str) -> Person | None:
        """What the registry needs about an owner or approver; None for an unknown name."""
        user = self._users.find_by_name(user_name)
        if user is None:
            return None
        return Person(id=user.id, user_name=user.user_name, display_name=user.display_name,
                      active=user.active, is_person=user.is_person, roles=self.roles_of(user))


def _walk(member_id: str,
          containing: Callable[[str], Sequence[DirectoryGroup]]) -> tuple[Membership, ...]:
    found: dict[str, Membership] = {}
    frontier = [member_id]
    direct = True
    while frontier:
        next_frontier: list[str] = []
        for current in frontier:
            for group in containing(current):
                if group.id not in found and group.id != member_id:
                    found[group.id] = Membership(group, direct)
                    next_frontier.append(group.id)
        frontier, direct = next_frontier, False
    return tuple(found.values())
