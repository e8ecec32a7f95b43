"""Policy epochs: accepting bundles, keeping their history, and deciding with the newest.

Every accepted bundle that differs from the current one becomes a new **policy epoch**
(1, 2, …) recorded with its actor, time, SHA-256 and file list; applying the same bundle
again changes nothing. The store keeps the current files and the history
(:class:`PolicyStore`); the engine decides with the epoch it loaded, and
:meth:`PolicyService.refresh` loads a newer one another server replica stored.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tabard.clock import Clock
from tabard.policy.bundle import PolicyBundle, compile_bundle
from tabard.policy.decision import Decision, DecisionRequest
from tabard.policy.engine import PolicyEngine
from tabard.policy.errors import PolicyEpochConflictError

__all__ = ["AppliedPolicies", "PolicyEpoch", "PolicyService", "PolicyStore", "StoredPolicies"]


@dataclass(frozen=True, slots=True)
class PolicyEpoch:
    epoch: int
    actor: str
    at: datetime
    sha256: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredPolicies:
    epoch: PolicyEpoch
    files: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class AppliedPolicies:
    epoch: PolicyEpoch
    changed: bool


class PolicyStore(Protocol):
    def current(self) -> StoredPolicies | None: ...

    def current_epoch(self) -> int:
        """The newest epoch number, 0 before the first bundle."""
        ...

    def save(self, files: Mapping[str, str], record: PolicyEpoch) -> None:
        """Replace the current files and add ``record`` to the history, atomically;
        :class:`PolicyEpochConflictError` if epoch ``record.epoch`` exists already."""
        ...

    def history(self, limit: int) -> builtins.list[PolicyEpoch]:
        """Newest first."""
        ...


class PolicyService:
    def __init__(self, store: PolicyStore, engine: PolicyEngine, clock: Clock) -> None:
        self._store = store
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    def load(self) -> None:
        """Decide with the stored bundle (at start, and when another replica changed it)."""
        stored = self._store.current()
        if stored is not None:
            self._engine.load(compile_bundle(PolicyBundle.of(stored.files)),
                              stored.epoch.epoch)

    def refresh(self) -> None:
        if self._store.current_epoch() != self._engine.policy_epoch:
            self.load()

    def apply(self, bundle: PolicyBundle, *, actor: str,
              expected_epoch: int | None = None) -> AppliedPolicies:
        """Validate and store ``bundle`` as the next epoch. ``expected_epoch``: the epoch
        the caller based it on (a newer one is a conflict)."""
        compiled = compile_bundle(bundle)
        current = self._store.current()
        number = current.epoch.epoch if current else 0
        if expected_epoch is not None and expected_epoch != number:
            raise PolicyEpochConflictError(f"the policies are at epoch {number}, not "
                                           f"{expected_epoch}")
        if current is not None and current.epoch.sha256 == bundle.sha256:
            if self._engine.policy_epoch != number:
                self._engine.load(compiled, number)
            return AppliedPolicies(current.epoch, changed=False)
        record = PolicyEpoch(number + 1, actor, self._clock.now(), bundle.sha256, bundle.names)
        self._store.save(bundle.as_dict(), record)
        self._engine.load(compiled, record.epoch)
        return AppliedPolicies(record, changed=True)

    def current(self) -> StoredPolicies | None:
        return self._store.current()

    def history(self, limit: int = 100) -> builtins.list[PolicyEpoch]:
        return self._store.history(max(1, min(limit, 1000)))

    def decide(self, request: DecisionRequest) -> Decision:
        """A decision with the newest stored epoch (one cheap read to check it)."""
        self.refresh()
        return self._engine.decide(request)
