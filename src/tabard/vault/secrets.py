"""The secret store use cases: put, rotate, delete, list, and the in-process reveal.

Values go in through :meth:`Vault.put` and :meth:`Vault.rotate` and come out only through
:meth:`Vault.reveal`, which the credential providers call in the same process. No method
returns a value to an interface; metadata carries none.

:meth:`Vault.reveal` reads the secret's row and its version's, then unwraps and decrypts:
on every request of a gateway route with a static credential. With ``reveal_ttl`` the
revealed value is kept in memory for that long, per (name, version asked), never past the
version's own expiry; :meth:`Vault.put`, :meth:`Vault.rotate`, :meth:`Vault.delete` and
:meth:`Vault.sweep` drop what they change at once in this process. A rotation or deletion
made by another process is seen here within ``reveal_ttl``; meanwhile the old version is
still inside its rotation grace (``reveal_ttl`` is capped at ``grace``), so it is still a
valid version. A deleted secret, though, can be served for up to ``reveal_ttl`` by a
process that did not delete it: that is the documented window.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

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
    (so requests in flight finish), then :meth:`sweep` destroys it. ``reveal_ttl`` (off by
    default) keeps revealed values in memory (module docstring), at most
    ``reveal_cache_size`` of them."""

    def __init__(self, store: SecretStore, cipher: EnvelopeCipher, clock: Clock, *,
                 grace: timedelta = DEFAULT_ROTATION_GRACE,
                 reveal_ttl: timedelta = timedelta(0), reveal_cache_size: int = 1024) -> None:
        self._store, self._cipher, self._clock, self.grace = store, cipher, clock, grace
        self.reveal_ttl = max(timedelta(0), min(reveal_ttl, grace))
        self._cache_size = reveal_cache_size if self.reveal_ttl > timedelta(0) else 0
        self._revealed: dict[tuple[str, int | None], tuple[datetime, SecretValue]] = {}
        self._cache_lock = threading.Lock()
        self._generation = 0

    def _forget(self, name: str | None = None) -> None:
        """Drop cached values of ``name`` (all when None), and make reveals already running
        unable to store what they read before."""
        with self._cache_lock:
            self._generation += 1
            if name is None:
                self._revealed.clear()
            else:
                for key in [k for k in self._revealed if k[0] == name]:
                    del self._revealed[key]

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
        self._forget(name)
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
        self._forget(name)
        log.info("secret rotated", extra={"secret": name, "version": number})
        return meta

    def delete(self, name: str) -> None:
        """Destroy every version (ciphertexts and wrapped keys erased) and retire the name."""
        self._live(name)
        now = self._clock.now()
        self._store.destroy(name, None, now)
        self._store.mark_deleted(name, now)
        self._forget(name)
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
            self._forget(name)
        if destroyed:
            log.info("expired secret versions destroyed", extra={"count": destroyed})
        return destroyed

    def reveal(self, name: str, version: int | None = None) -> SecretValue:
        """The value of the current (or a given, not yet destroyed) version, for a credential
        provider in this process. Interfaces never call this. Served from memory for up
        to ``reveal_ttl`` (module docstring)."""
        if not self._cache_size:
            return self._reveal(name, version)
        key = (name, version)
        now = self._clock.now()
        with self._cache_lock:
            hit = self._revealed.get(key)
            generation = self._generation
        if hit is not None:
            if now < hit[0]:
                return hit[1]
            with self._cache_lock:
                if self._revealed.get(key) is hit:
                    del self._revealed[key]
        value, expires_at = self._reveal_with_expiry(name, version)
        deadline = now + self.reveal_ttl
        if expires_at is not None:
            deadline = min(deadline, expires_at)
        with self._cache_lock:
            if generation == self._generation and deadline > now:
                if len(self._revealed) >= self._cache_size:
                    self._revealed.clear()
                self._revealed[key] = (deadline, value)
        return value

    def cached(self, name: str) -> SecretValue | None:
        """The current version's value if :meth:`reveal` would serve it from memory now,
        else None (the caller, on an event loop, then reveals it in a worker thread)."""
        with self._cache_lock:
            hit = self._revealed.get((name, None))
        if hit is not None and self._clock.now() < hit[0]:
            return hit[1]
        return None

    def _reveal(self, name: str, version: int | None) -> SecretValue:
        return self._reveal_with_expiry(name, version)[0]

    def _reveal_with_expiry(self, name: str, version: int | None
                            ) -> tuple[SecretValue, datetime | None]:
        meta = self._live(name)
        number = meta.current_version if version is None else version
        stored = self._store.version(name, number)
        if stored is None or stored.envelope is None:
            raise SecretNotFoundError(f"secret {name!r} has no version {number} to use")
        if stored.expires_at is not None and self._clock.now() >= stored.expires_at:
            raise SecretNotFoundError(f"secret {name!r} version {number} has expired")
        return (SecretValue(name, number, self._cipher.open(name, number, stored.envelope)),
                stored.expires_at)

    def _live(self, name: str) -> SecretMeta:
        meta = self._store.get(check_secret_name(name))
        if meta is None or meta.deleted_at is not None:
            raise SecretNotFoundError(f"no secret {name!r}")
        return meta
