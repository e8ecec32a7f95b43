"""Fixtures for the authority's unit tests: a fake clock, the in-memory store, key managers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerifiedClient

from tabard.authority import Authority, MemoryKeyManager
from tabard.authority.keymanager import KeyManager
from tabard.clock import FakeClock
from tabard.spiffe import SpiffeId, TrustDomain
from tests.fakes.authority_store import InMemoryAuthorityStore

TD = TrustDomain("example.org")
WORKLOAD = SpiffeId.parse("spiffe://example.org/agent/triage/instance/1")
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store() -> InMemoryAuthorityStore:
    return InMemoryAuthorityStore()


@pytest.fixture
def key_manager() -> MemoryKeyManager:
    return MemoryKeyManager()


AuthorityFactory = Callable[..., Authority]


@pytest.fixture
def make_authority(
    key_manager: KeyManager, store: InMemoryAuthorityStore, clock: FakeClock
) -> AuthorityFactory:
    def make(**options: Any) -> Authority:
        km = options.pop("key_manager", key_manager)
        st = options.pop("store", store)
        authority = Authority(TD, km, st, clock, **options)
        authority.ensure_initialized()
        return authority

    return make


def verify_chain(
    chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], at: datetime
) -> VerifiedClient:
    """RFC 5280 path validation of an X509-SVID chain with ``cryptography``'s verifier."""
    verifier = PolicyBuilder().store(Store(list(roots))).time(at).build_client_verifier()
    return verifier.verify(chain[0], list(chain[1:]))
