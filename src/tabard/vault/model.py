"""Values of the vault: secret metadata and versions, revealed values, leases.

Nothing here prints a secret value: :class:`SecretValue` hides its bytes from ``repr`` and
``str``, and metadata types carry no value at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tabard.vault.envelope import Envelope
from tabard.vault.errors import SecretNameError

__all__ = [
    "MAX_SECRET_BYTES",
    "Lease",
    "LeaseQuery",
    "ProviderKind",
    "SecretMeta",
    "SecretValue",
    "SecretVersion",
    "VersionState",
    "check_secret_name",
]

MAX_SECRET_BYTES = 64 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_secret_name(name: str) -> str:
    """A secret name: 1-128 characters of letters, digits, ``.``, ``_``, ``-``, starting with
    a letter or digit (it travels in URL paths and route configuration)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SecretNameError(
            "a secret name is 1-128 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit")
    return name


class VersionState(StrEnum):
    CURRENT = "current"
    PREVIOUS = "previous"  # kept until expires_at after a rotation, then destroyed
    DESTROYED = "destroyed"


@dataclass(frozen=True, repr=False)
class SecretVersion:
    """One version of a secret. ``envelope`` is ``None`` once the version is destroyed, and
    in listings (which never read ciphertexts)."""

    name: str
    version: int
    created_at: datetime
    expires_at: datetime | None = None
    destroyed_at: datetime | None = None
    envelope: Envelope | None = None

    def state(self, current: int) -> VersionState:
        if self.destroyed_at is not None:
            return VersionState.DESTROYED
        return VersionState.CURRENT if self.version == current else VersionState.PREVIOUS

    def __repr__(self) -> str:
        return f"SecretVersion(name={self.name!r}, version={self.version})"


@dataclass(frozen=True)
class SecretMeta:
    """A secret's metadata; ``deleted_at`` is set once it is deleted (its name stays taken by
    the tombstone so version numbers are never reused)."""

    name: str
    description: str
    current_version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class SecretValue:
    """A revealed value, handed to a credential provider in-process only. Its bytes are
    reached through :meth:`expose`; ``repr``/``str`` never show them."""

    __slots__ = ("_value", "name", "version")

    def __init__(self, name: str, version: int, value: bytes) -> None:
        self.name, self.version, self._value = name, version, value

    def expose(self) -> bytes:
        return self._value

    def text(self) -> str:
        return self._value.decode("utf-8")

    def __repr__(self) -> str:
        return f"SecretValue(name={self.name!r}, version={self.version}, value=<hidden>)"

    __str__ = __repr__


class ProviderKind(StrEnum):
    STATIC = "static"
    CLIENT_CREDENTIALS = "client_credentials"
    DOWNSTREAM_JWT = "downstream_jwt"


@dataclass(frozen=True)
class Lease:
    """One credential handed out: who got it, for which route, from which secret version,
    until when. Never the credential itself."""

    id: str
    provider: ProviderKind
    route: str
    agent: str | None
    agent_instance: str | None
    user: str | None
    issued_at: datetime
    expires_at: datetime | None
    secret_name: str | None = None
    secret_version: int | None = None
    revoked_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class LeaseQuery:
    agent: str | None = None
    agent_instance: str | None = None
    secret_name: str | None = None
    route: str | None = None
    active_at: datetime | None = None  # only leases neither revoked nor expired at this time
    limit: int = 1000
