"""An in-memory :class:`tabard.authority.ports.AuthorityStore` for tests.

It follows the port's contract exactly (compare-and-set, typed errors) so the authority's
tests exercise the same behaviour the SQL adapter must provide. ``fail_next`` injects one
failure into the next call of a named method, to test crash ordering.
"""

from __future__ import annotations

import threading
from datetime import datetime

from tabard.authority.errors import AuthorityNotFoundError, AuthorityStateError
from tabard.authority.ports import AuthorityKeyRecord, AuthorityState
from tabard.errors import Conflict


class InMemoryAuthorityStore:
    def __init__(self) -> None:
        self._records: dict[str, AuthorityKeyRecord] = {}
        self._sequence = 0
        self._lock = threading.Lock()
        self.calls: list[str] = []
        self._failures: dict[str, Exception] = {}

    def fail_next(self, method: str, error: Exception) -> None:
        self._failures[method] = error

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        error = self._failures.pop(method, None)
        if error is not None:
            raise error

    def list_keys(self) -> list[AuthorityKeyRecord]:
        with self._lock:
            self._enter("list_keys")
            return sorted(self._records.values(), key=lambda r: (r.created_at, r.id))

    def add_key(self, record: AuthorityKeyRecord) -> None:
        with self._lock:
            self._enter("add_key")
            if record.id in self._records:
                raise Conflict(f"authority {record.id} exists")
            self._records[record.id] = record

    def set_state(
        self,
        record_id: str,
        state: AuthorityState,
        at: datetime,
        *,
        expected: AuthorityState | None = None,
    ) -> AuthorityKeyRecord:
        with self._lock:
            self._enter("set_state")
            record = self._records.get(record_id)
            if record is None:
                raise AuthorityNotFoundError(f"no authority {record_id}")
            if expected is not None and record.state != expected:
                raise AuthorityStateError(
                    f"authority {record_id} is {record.state}, expected {expected}"
                )
            updated = record.with_state(state, at)
            self._records[record_id] = updated
            return updated

    def bump_bundle_sequence(self) -> int:
        with self._lock:
            self._enter("bump_bundle_sequence")
            self._sequence += 1
            return self._sequence

    def bundle_sequence(self) -> int:
        with self._lock:
            self._enter("bundle_sequence")
            return self._sequence
