"""The directory's values: users, groups and their members, and the person view of a user.

A user or group keeps its whole SCIM representation (RFC 7643 §4) as a JSON document,
``attributes``, without the attributes the service provider owns (``id``, ``meta``, a user's
``groups``, a group's ``members``). Everything tabard reasons about (``userName``, ``active``,
``userType``, ``roles``) is read from that one document, so what an identity provider wrote
and what tabard decides on cannot drift apart. Treat ``attributes`` as read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from tabard.directory.errors import InvalidValueError

__all__ = [
    "MAX_NAME_LENGTH",
    "NON_PERSON_USER_TYPES",
    "ROLE_GROUP_PREFIX",
    "DirectoryGroup",
    "DirectoryUser",
    "Member",
    "MemberRef",
    "MemberType",
    "Membership",
    "Person",
    "UserDetails",
    "is_person_user_type",
    "name_key",
    "role_of_group",
]

MAX_NAME_LENGTH = 255
NON_PERSON_USER_TYPES = frozenset({"shared", "shared-mailbox", "service", "resource"})
"""``userType`` values (compared case-insensitively, ``_`` and spaces read as ``-``) of
accounts that are not a person: they can never own an agent."""
ROLE_GROUP_PREFIX = "tabard-"
"""Members of a group named ``tabard-<role>`` hold ``<role>``."""

MemberType = Literal["User", "Group"]


def name_key(name: str) -> str:
    """The form names are unique and looked up in: ``userName`` and a group's
    ``displayName`` are not case-exact (RFC 7643 §4.1.1, §4.2)."""
    return name.casefold()


def is_person_user_type(user_type: str | None) -> bool:
    if user_type is None:
        return True
    normalized = "-".join(user_type.strip().lower().replace("_", " ").split())
    return normalized not in NON_PERSON_USER_TYPES


def role_of_group(display_name: str) -> str | None:
    """The role a group grants by its name, ``tabard-approver`` → ``approver``; else None."""
    lowered = display_name.strip().lower()
    if lowered.startswith(ROLE_GROUP_PREFIX) and len(lowered) > len(ROLE_GROUP_PREFIX):
        return lowered[len(ROLE_GROUP_PREFIX):]
    return None


def _name(attributes: Mapping[str, Any], key: str, what: str) -> str:
    value = attributes.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(f"{what} needs a non-empty {key}")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidValueError(f"{key} is limited to {MAX_NAME_LENGTH} characters")
    return value


def _optional_str(attributes: Mapping[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) else None


def _values(attributes: Mapping[str, Any], key: str) -> tuple[str, ...]:
    entries = attributes.get(key)
    if not isinstance(entries, list):
        return ()
    return tuple(
        e["value"] for e in entries
        if isinstance(e, Mapping) and isinstance(e.get("value"), str) and e["value"]
    )


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user (RFC 7643 §4.1): ``attributes`` is its SCIM document; the rest is the
    service provider's (``version`` is the ETag's counter)."""

    id: str
    attributes: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def __post_init__(self) -> None:
        _name(self.attributes, "userName", "a user")
        active = self.attributes.get("active")
        if active is not None and not isinstance(active, bool):
            raise InvalidValueError("active must be true or false")

    @property
    def user_name(self) -> str:
        return str(self.attributes["userName"])

    @property
    def active(self) -> bool:
        """A user is active unless ``active`` is false (RFC 7643 gives no default)."""
        return self.attributes.get("active") is not False

    @property
    def display_name(self) -> str | None:
        return _optional_str(self.attributes, "displayName")

    @property
    def user_type(self) -> str | None:
        return _optional_str(self.attributes, "userType")

    @property
    def external_id(self) -> str | None:
        return _optional_str(self.attributes, "externalId")

    @property
    def emails(self) -> tuple[str, ...]:
        return _values(self.attributes, "emails")

    @property
    def roles(self) -> tuple[str, ...]:
        """The user's own ``roles`` values (not those granted by groups)."""
        return _values(self.attributes, "roles")

    @property
    def is_person(self) -> bool:
        return is_person_user_type(self.user_type)


@dataclass(frozen=True, slots=True)
class Member:
    """A group member (RFC 7643 §4.2): the member's ``id``, its type, and the ``display``
    the client gave, if any."""

    value: str
    type: MemberType
    display: str | None = None


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A member as a client names it: an id, and optionally the type and display it claims.
    The directory resolves it to a :class:`Member` (or refuses it)."""

    value: str
    type: str | None = None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class DirectoryGroup:
    """A group (RFC 7643 §4.2): ``attributes`` is its SCIM document without ``members``."""

    id: str
    attributes: Mapping[str, Any]
    members: tuple[Member, ...]
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def __post_init__(self) -> None:
        _name(self.attributes, "displayName", "a group")
        values = [m.value for m in self.members]
        if len(set(values)) != len(values):
            raise InvalidValueError("a group lists each member once")
        if self.id in values:
            raise InvalidValueError("a group cannot be a member of itself")

    @property
    def display_name(self) -> str:
        return str(self.attributes["displayName"])

    @property
    def external_id(self) -> str | None:
        return _optional_str(self.attributes, "externalId")

    @property
    def role(self) -> str | None:
        return role_of_group(self.display_name)


@dataclass(frozen=True, slots=True)
class Membership:
    """A group a user or group belongs to, directly or through nested groups."""

    group: DirectoryGroup
    direct: bool


@dataclass(frozen=True, slots=True)
class Person:
    """What other parts of tabard need to know about a human by their ``userName``: whether
    they exist as an active person, and which tabard roles they hold."""

    id: str
    user_name: str
    display_name: str | None
    active: bool
    is_person: bool
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class UserDetails:
    """A user with everything derived from the directory: memberships and effective roles."""

    user: DirectoryUser
    memberships: tuple[Membership, ...]
    roles: frozenset[str]
