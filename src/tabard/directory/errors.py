"""Errors of the directory: one class per rule, each with a stable ``code``.

The SCIM ones carry the ``scimType`` keyword of RFC 7644 §3.12 (Table 9) in their code, so
the SCIM interface maps a code to its status and keyword with one table.
"""

from __future__ import annotations

from tabard.errors import Conflict, Invalid, NotFound, TabardError

__all__ = [
    "DirectoryNotFoundError",
    "DuplicateGroupError",
    "DuplicateUserError",
    "GroupNotFoundError",
    "InvalidFilterError",
    "InvalidPathError",
    "InvalidSyntaxError",
    "InvalidValueError",
    "InvalidVersionError",
    "MutabilityError",
    "NoTargetError",
    "NotSupportedError",
    "PreconditionFailedError",
    "TooManyError",
    "UserNotFoundError",
]


class UserNotFoundError(NotFound):
    code = "user_not_found"


class GroupNotFoundError(NotFound):
    code = "group_not_found"


class DirectoryNotFoundError(NotFound):
    """A SCIM endpoint, schema or resource type that does not exist."""

    code = "scim_not_found"


class DuplicateUserError(Conflict):
    """Another user has this ``userName`` (compared case-insensitively): scimType ``uniqueness``."""

    code = "user_exists"


class DuplicateGroupError(Conflict):
    """Another group has this ``displayName`` (compared case-insensitively)."""

    code = "group_exists"


class PreconditionFailedError(Conflict):
    """The resource changed since the version the client named (``If-Match``, RFC 7644 §3.14)."""

    code = "precondition_failed"


class InvalidFilterError(Invalid):
    code = "invalid_filter"


class InvalidSyntaxError(Invalid):
    code = "invalid_syntax"


class InvalidPathError(Invalid):
    code = "invalid_path"


class NoTargetError(Invalid):
    code = "no_target"


class InvalidValueError(Invalid):
    code = "invalid_value"


class MutabilityError(Invalid):
    code = "mutability"


class TooManyError(Invalid):
    code = "too_many"


class InvalidVersionError(Invalid):
    code = "invalid_version"


class NotSupportedError(TabardError):
    """An optional SCIM feature tabard does not offer (bulk, sorting): HTTP 501."""

    code = "not_implemented"
