"""A bounded cache of verified tokens' claims, for the resource-server path (the gateway).

Verifying one of tabard's access tokens checks its signature and reads its record (an SQL
read in a real deployment), then the lifecycle of its user and agent: on every request of a
busy agent that is most of what the gateway spends before forwarding. This cache keeps the
claims of a token that passed, keyed by the SHA-256 of the token (and of what else the
check depended on, e.g. the accepted audiences), until the earliest of its expiry and
``window`` seconds after the check: ``window`` is the revocation freshness, the longest a
revocation or a lifecycle change made in *another* process can go unseen here.

In this process nothing waits for the window: :meth:`VerifiedTokenCache.clear` drops every
entry at once (the authorization server calls it on revocation, the composition root on
kill-switch revocations and on agent or user changes), and it bumps a generation so a
check that was already running when it was called cannot store its (possibly stale)
result afterwards. Failures are never cached.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

__all__ = ["VerifiedTokenCache"]


class VerifiedTokenCache:
    """Claims by token digest, each until its own deadline (module docstring). ``window``
    0 or ``size`` 0 turns the cache off (every call verifies)."""

    def __init__(self, *, window: float = 1.0, size: int = 10_000) -> None:
        if window < 0 or size < 0:
            raise ValueError("window and size must not be negative")
        self.window = float(window)
        self._size = size if window > 0 else 0
        self._entries: OrderedDict[bytes, tuple[float, Mapping[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def enabled(self) -> bool:
        return self._size > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def generation(self) -> int:
        """Read before a check; pass to :meth:`put` (module docstring)."""
        return self._generation

    @staticmethod
    def key(token: str, *context: str) -> bytes:
        digest = hashlib.sha256(token.encode())
        for part in context:
            digest.update(b"\0" + part.encode())
        return digest.digest()

    def get(self, key: bytes, now: float) -> Mapping[str, Any] | None:
        """The claims stored under ``key`` while ``now`` is before their deadline."""
        if not self._size:
            return None
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if now >= hit[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return hit[1]

    def put(self, key: bytes, claims: Mapping[str, Any], *, now: float, expires: float,
            generation: int) -> None:
        """Keep ``claims`` until ``min(expires, now + window)``, unless the cache was cleared
        since ``generation`` was read."""
        deadline = min(expires, now + self.window)
        if not self._size or deadline <= now:
            return
        with self._lock:
            if generation != self._generation:
                return
            self._entries[key] = (deadline, claims)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry now (a revocation, a lifecycle change)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
