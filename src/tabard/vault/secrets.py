"""The secret store use cases: put, rotate, delete, list, and the in-process reveal.

Values go in through :meth:`Vault.put` and :meth:`Vault.rotate` and come out only through
:meth:`Vault.reveal`, which the credential providers call in the same process. No method
returns a value to an interface; metadata carries none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from tabard.clock import Clock
from tabard.vault.envelope import EnvelopeCipher
from tabard.vault.errors import SecretNotFoundError, SecretValueError
from tabard.vault.model import (
    MAX_SECRET_BYTES,
    SecretMeta,
    SecretValue,
    SecretVersion,
    check_secret_name,
)
from tabard.vault.ports import SecretStore

__all__ = ["DEFAULT_ROTATION_GRACE", "SecretDetails", "Vault"]

DEFAULT_ROTATION_GRACE = timedelta(hours=24)
MAX_DESCRIPTION = 1024
log = logging.getLogger("tabard.vault")


@dataclass(frozen=True)
class SecretDetails:
    meta: SecretMeta
    versions: Sequence[SecretVersion]


def _check_value(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise SecretValueError("a secret value must be bytes")
    if not value:
        raise SecretValueError("a secret value must not be empty")
    if len(value) > MAX_SECRET_BYTES:
        raise SecretValueError(f"a secret value is limited to {MAX_SECRET_BYTES} bytes")
    return bytes(value)


def _check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise SecretValueError(f"a description is limited to {MAX_DESCRIPTION} characters")
    return description


class Vault:
    """Encrypted secrets with versions. A rotation keeps the previous version for ``grace``
    (so requests in flight finish), then :meth:`sweep` destroys it."""

    def __init__(self, store: SecretStore, cipher: EnvelopeCipher, clock: Clock, *,
                 grace: timedelta = DEFAULT_ROTATION_GRACE) -> None:
        self._store, self._cipher, self._clock, self.grace = store, cipher, clock, grace

    def put(self, name: str, value: bytes, *, description: str = "") -> SecretMeta:
        """Create a secret (version 1), or bring back a deleted name with its next version."""
        name, value = check_secret_name(name), _check_value(value)
        description = _check_description(description)
        now = self._clock.now()
        existing = self._store.get(name)
        if existing is not None and existing.deleted_at is not None:
            number = max([v.version for v in self._store.versions(name)] or [0]) + 1
            meta = replace(existing, description=description, current_version=number,
                           updated_at=now, deleted_at=None, created_at=now)
            version = SecretVersion(name, number, now,
                                    envelope=self._cipher.seal(name, number, value))
            self._store.add_version(meta, version, expected_current=existing.current_version,
                                    previous_expires_at=None)
        else:
            meta = SecretMeta(name, description, 1, now, now)
            version = SecretVersion(name, 1, now, envelope=self._cipher.seal(name, 1, value))
            self._store.create(meta, version)
        log.info("secret stored", extra={"secret": name, "version": meta.current_version})
        return meta

    def rotate(self, name: str, value: bytes, *, description: str | None = None) -> SecretMeta:
        """A new current version; the old one stays readable for the grace period."""
        value = _check_value(value)
        current = self._live(name)
        now = self._clock.now()
        number = current.current_version + 1
        meta = replace(current, current_version=number, updated_at=now,
                       description=current.description if description is None
                       else _check_description(description))
        version = SecretVersion(name, number, now,
                                envelope=self._cipher.seal(name, number, value))
        self._store.add_version(meta, version, expected_current=current.current_version,
                                previous_expires_at=now + self.grace)
        log.info("secret rotated", extra={"secret": name, "version": number})
        return meta

    def delete(self, name: str) -> None:
        """Destroy every version (ciphertexts and wrapped keys erased) and retire the name."""
        self._live(name)
        now = self._clock.now()
        self._store.destroy(name, None, now)
        self._store.mark_deleted(name, now)
        log.info("secret deleted", extra={"secret": name})

    def list(self) -> Sequence[SecretMeta]:
        return self._store.list()

    def show(self, name: str) -> SecretDetails:
        return SecretDetails(self._live(name), self._store.versions(name))

    def sweep(self) -> int:
        """Destroy versions past their grace period; returns how many."""
        now = self._clock.now()
        destroyed = 0
        for name, number in self._store.expired_versions(now):
            destroyed += self._store.destroy(name, [number], now)
        if destroyed:
            log.info("expired secret versions destroyed", extra={"count": destroyed})
        return destroyed

    def reveal(self, name: str, version: int | None = None) -> SecretValue:
        """The value of the current (or a given, not yet destroyed) version, for a credential
        provider in this process. Interfaces never call this."""
        meta = self._live(name)
        number = meta.current_version if version is None else version
        stored = self._store.version(name, number)
        if stored is None or stored.envelope is None:
            raise SecretNotFoundError(f"secret {name!r} has no version {number} to use")
        if stored.expires_at is not None and self._clock.now() >= stored.expires_at:
            raise SecretNotFoundError(f"secret {name!r} version {number} has expired")
        return SecretValue(name, number, self._cipher.open(name, number, stored.envelope))

    def _live(self, name: str) -> SecretMeta:
        meta = self._store.get(check_secret_name(name))
        if meta is None or meta.deleted_at is not None:
            raise SecretNotFoundError(f"no secret {name!r}")
        return meta
