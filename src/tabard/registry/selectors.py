"""Selectors: ``type:value`` facts about a node or a process that registration entries match.

The value may itself contain colons (``unix:path:/usr/bin/python3``), so a selector splits at
its first colon only. The ``unix`` kinds that tabard's workload attestor produces are checked
strictly here, so an entry that could never match (``unix:uid:abc``) is refused when it is
written, not silently ignored later. Other types belong to plugins and only need a
well-formed type name and a non-empty value.

An entry matches a workload when every one of the entry's selectors is among the workload's
(:func:`matches`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tabard.registry.errors import InvalidSelectorError

__all__ = [
    "MAX_SELECTOR_LENGTH",
    "UNIX_KINDS",
    "Selector",
    "matches",
    "parse_selectors",
]

MAX_SELECTOR_LENGTH = 4200
"""Long enough for ``unix:path:`` and a PATH_MAX (4096) path."""

UNIX_KINDS = ("uid", "gid", "user", "group", "path", "sha256")

_TYPE = re.compile(r"[a-z0-9_-]+")
_ID = re.compile(r"(0|[1-9][0-9]{0,9})")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_ID = 2**32 - 1


def _check_unix(value: str, text: str) -> None:
    kind, sep, rest = value.partition(":")
    if not sep or kind not in UNIX_KINDS:
        raise InvalidSelectorError(
            f"selector {text!r}: unix selectors are unix:KIND:VALUE with KIND one of "
            f"{', '.join(UNIX_KINDS)}"
        )
    if kind in ("uid", "gid"):
        if not _ID.fullmatch(rest) or int(rest) > _MAX_ID:
            raise InvalidSelectorError(f"selector {text!r}: {kind} must be a decimal number")
    elif kind in ("user", "group"):
        if not _NAME.fullmatch(rest):
            raise InvalidSelectorError(f"selector {text!r}: not a valid {kind} name")
    elif kind == "path":
        if not rest.startswith("/"):
            raise InvalidSelectorError(f"selector {text!r}: path must be absolute")
    elif not _SHA256.fullmatch(rest):
        raise InvalidSelectorError(
            f"selector {text!r}: sha256 must be 64 lowercase hexadecimal characters"
        )


@dataclass(frozen=True, slots=True, order=True)
class Selector:
    """One ``type:value`` selector; construct with :meth:`parse` or validate via ``__init__``."""

    type: str
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not isinstance(self.value, str):
            raise InvalidSelectorError("selector type and value must be strings")
        text = f"{self.type}:{self.value}"
        if len(text) > MAX_SELECTOR_LENGTH:
            raise InvalidSelectorError(
                f"selector is longer than {MAX_SELECTOR_LENGTH} characters"
            )
        if not _TYPE.fullmatch(self.type):
            raise InvalidSelectorError(
                f"selector {text!r}: type must be lowercase letters, digits, '_' or '-'"
            )
        if not self.value:
            raise InvalidSelectorError(f"selector {text!r}: value is empty (use type:value)")
        if _CONTROL.search(self.value):
            raise InvalidSelectorError(f"selector {text!r}: value has control characters")
        if self.type == "unix":
            _check_unix(self.value, text)

    @classmethod
    def parse(cls, text: str) -> Selector:
        """Parse ``type:value``, splitting at the first colon."""
        if not isinstance(text, str):
            raise InvalidSelectorError("selector must be a string")
        kind, sep, value = text.partition(":")
        if not sep:
            raise InvalidSelectorError(f"selector {text!r}: expected type:value")
        return cls(kind, value)

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


def parse_selectors(values: Iterable[str | Selector]) -> tuple[Selector, ...]:
    """Parse, de-duplicate and sort: the canonical form stored and compared."""
    parsed = {v if isinstance(v, Selector) else Selector.parse(v) for v in values}
    return tuple(sorted(parsed))


def matches(required: Iterable[Selector], present: Iterable[Selector]) -> bool:
    """True when every required selector is present (an entry with no selectors never matches)."""
    needed = set(required)
    return bool(needed) and needed <= set(present)
