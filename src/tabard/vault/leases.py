"""Leases: the record of every credential a provider hands out (never the credential).

The kill switch and retirement revoke all leases of an agent or an agent instance in one
call (:meth:`Leases.revoke_agent`, :meth:`Leases.revoke_instance`); the gateway asks
:meth:`Leases.is_active` before it reuses a credential.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from tabard.clock import Clock
from tabard.errors import Invalid
from tabard.vault.errors import LeaseNotFoundError
from tabard.vault.model import Lease, LeaseQuery, ProviderKind
from tabard.vault.ports import LeaseStore

__all__ = ["MAX_LEASE_PAGE", "Leases", "new_lease_id"]

MAX_LEASE_PAGE = 10_000
log = logging.getLogger("tabard.vault")


def new_lease_id() -> str:
    """A random lease id (128 bits, hex): also used as the ``jti`` of minted tokens."""
    return uuid.uuid4().hex


class Leases:
    def __init__(self, store: LeaseStore, clock: Clock) -> None:
        self._store, self._clock = store, clock

    def record(self, *, provider: ProviderKind, route: str, agent: str | None,
               agent_instance: str | None, user: str | None, expires_at: datetime | None,
               secret_name: str | None = None, secret_version: int | None = None,
               lease_id: str | None = None, issued_at: datetime | None = None) -> Lease:
        lease = Lease(
            id=lease_id or new_lease_id(), provider=provider, route=route, agent=agent,
            agent_instance=agent_instance, user=user,
            issued_at=issued_at or self._clock.now(), expires_at=expires_at,
            secret_name=secret_name, secret_version=secret_version,
        )
        self._store.add(lease)
        return lease

    def get(self, lease_id: str) -> Lease:
        lease = self._store.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError(f"no lease {lease_id!r}")
        return lease

    def is_active(self, lease_id: str) -> bool:
        lease = self._store.get(lease_id)
        return lease is not None and lease.active(self._clock.now())

    def list(self, query: LeaseQuery) -> Sequence[Lease]:
        if not 1 <= query.limit <= MAX_LEASE_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_LEASE_PAGE}")
        return self._store.list(query)

    def revoke(self, lease_id: str) -> Lease:
        """Revoke one lease (idempotent: revoking a revoked lease changes nothing)."""
        lease = self.get(lease_id)
        if lease.revoked_at is None:
            self._store.revoke(lease_id, self._clock.now())
            log.info("lease revoked", extra={"lease": lease_id})
        return self.get(lease_id)

    def revoke_agent(self, agent: str) -> int:
        """Revoke every lease of every instance of an agent; returns how many."""
        if not agent:
            raise Invalid("an agent name is required")
        count = self._store.revoke_matching(agent=agent, agent_instance=None,
                                            at=self._clock.now())
        log.info("agent leases revoked", extra={"agent": agent, "count": count})
        return count

    def revoke_instance(self, agent_instance: str) -> int:
        """Revoke every lease of one agent instance; returns how many."""
        if not agent_instance:
            raise Invalid("an agent instance is required")
        count = self._store.revoke_matching(agent=None, agent_instance=agent_instance,
                                            at=self._clock.now())
        log.info("instance leases revoked",
                 extra={"agent_instance": agent_instance, "count": count})
        return count
