"""What the vault needs from storage: one small port per aggregate (secrets, leases)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tabard.vault.model import Lease, LeaseQuery, SecretMeta, SecretVersion

__all__ = ["LeaseStore", "SecretStore"]


class SecretStore(Protocol):
    def get(self, name: str) -> SecretMeta | None:
        """The secret's metadata, tombstones included."""
        ...

    def create(self, meta: SecretMeta, version: SecretVersion) -> None:
        """A new name with its first version; :class:`SecretExistsError` if the name exists."""
        ...

    def add_version(self, meta: SecretMeta, version: SecretVersion, *, expected_current: int,
                    previous_expires_at: datetime | None) -> None:
        """Make ``version`` current and write ``meta`` over the row, if the current version is
        still ``expected_current`` (else :class:`SecretVersionConflictError`); the version
        that was current gets ``previous_expires_at``."""
        ...

    def version(self, name: str, version: int) -> SecretVersion | None: ...

    def versions(self, name: str) -> Sequence[SecretVersion]:
        """Every version, newest first (envelopes left out)."""
        ...

    def list(self) -> Sequence[SecretMeta]:
        """Secrets that are not deleted, by name."""
        ...

    def destroy(self, name: str, versions: Sequence[int] | None, at: datetime) -> int:
        """Erase the envelopes of these versions (all when ``None``); returns how many."""
        ...

    def mark_deleted(self, name: str, at: datetime) -> bool: ...

    def expired_versions(self, at: datetime) -> Sequence[tuple[str, int]]:
        """Versions past their grace period and not yet destroyed."""
        ...


class LeaseStore(Protocol):
    def add(self, lease: Lease) -> None: ...

    def add_many(self, leases: Sequence[Lease]) -> None:
        """Insert every lease in one transaction (all or none)."""
        ...

    def get(self, lease_id: str) -> Lease | None: ...

    def list(self, query: LeaseQuery) -> Sequence[Lease]:
        """Newest first."""
        ...

    def revoke(self, lease_id: str, at: datetime) -> bool:
        """``False`` when unknown or already revoked."""
        ...

    def revoke_matching(self, *, agent: str | None, agent_instance: str | None,
                        at: datetime) -> int:
        """Revoke every unrevoked lease of this agent (definition) or agent instance."""
        ...
