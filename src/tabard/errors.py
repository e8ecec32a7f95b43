"""The one exception root of tabard and its categories.

Every error raised on purpose by tabard is a :class:`TabardError` with a stable ``code``.
Interfaces map the category to their wire form with one table each (HTTP status, gRPC code,
CLI exit code), so a handler never inspects messages.

    TabardError
    ├── Invalid       bad input: a value that breaks a rule (HTTP 400, CLI exit 2)
    ├── NotFound      the named thing does not exist (404)
    ├── Conflict      the thing exists, or its state forbids the change (409)
    ├── Unauthenticated  no or bad credentials (401)
    ├── Denied        authenticated, not allowed (403)
    └── Unavailable   a dependency is down; try again (503)
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Denied",
    "Invalid",
    "NotFound",
    "TabardError",
    "Unauthenticated",
    "Unavailable",
]


class TabardError(Exception):
    """Root of every deliberate tabard error. ``code`` is stable and machine-readable."""

    code: str = "tabard_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class Invalid(TabardError):
    """Input that breaks a rule. The message names the rule."""

    code = "invalid"


class NotFound(TabardError):
    code = "not_found"


class Conflict(TabardError):
    code = "conflict"


class Unauthenticated(TabardError):
    code = "unauthenticated"


class Denied(TabardError):
    code = "denied"


class Unavailable(TabardError):
    code = "unavailable"
