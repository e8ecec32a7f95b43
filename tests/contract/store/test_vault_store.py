"""The vault's SQL stores on SQLite and PostgreSQL: versions, rotation grace, destruction,
tombstones, leases and their revocation by agent and instance."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tabard.clock import FakeClock
from tabard.store import Database, SqlLeaseStore, SqlSecretStore
from tabard.store.tables import vault_secret_versions
from tabard.vault import (
    EnvelopeCipher,
    LeaseQuery,
    Leases,
    ProviderKind,
    SecretExistsError,
    SecretNotFoundError,
    SecretVersionConflictError,
    Vault,
    VersionState,
)

VALUE = b"upstream-token-\x00\xff-value"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def vault(db: Database, clock: FakeClock) -> Vault:
    return Vault(SqlSecretStore(db), EnvelopeCipher(b"k" * 32), clock,
                 grace=timedelta(hours=1))


def test_put_reveal_and_no_plaintext_in_rows(vault: Vault, db: Database) -> None:
    meta = vault.put("github-token", VALUE, description="CI bot")
    assert (meta.name, meta.current_version, meta.description) == ("github-token", 1, "CI bot")
    assert vault.reveal("github-token").expose() == VALUE
    with db.connect() as c:
        row = c.execute(select(vault_secret_versions)).one()
    assert VALUE not in bytes(row.ciphertext) and len(row.nonce) == 12
    assert row.kek_id == EnvelopeCipher(b"k" * 32).kek_id
    with pytest.raises(SecretExistsError):
        vault.put("github-token", b"other")


def test_rotation_keeps_previous_for_grace_then_sweep_destroys(
        vault: Vault, clock: FakeClock, db: Database) -> None:
    vault.put("api", b"v1")
    clock.advance(10)
    meta = vault.rotate("api", b"v2")
    assert meta.current_version == 2 and meta.description == ""
    assert vault.reveal("api").expose() == b"v2"
    assert vault.reveal("api", 1).expose() == b"v1"
    states = [(v.version, v.state(2)) for v in vault.show("api").versions]
    assert states == [(2, VersionState.CURRENT), (1, VersionState.PREVIOUS)]
    assert vault.sweep() == 0
    clock.advance(timedelta(hours=1))
    with pytest.raises(SecretNotFoundError):
        vault.reveal("api", 1)
    assert vault.sweep() == 1
    with db.connect() as c:
        old = c.execute(select(vault_secret_versions)
                        .where(vault_secret_versions.c.version == 1)).one()
    assert old.ciphertext is None and old.wrapped_key is None and old.nonce is None
    assert old.destroyed_at == clock.now()
    assert vault.reveal("api").expose() == b"v2"


def test_delete_erases_every_version_and_name_comes_back_with_next_version(
        vault: Vault, db: Database) -> None:
    vault.put("db-password", b"one")
    vault.rotate("db-password", b"two")
    vault.delete("db-password")
    assert vault.list() == []
    with pytest.raises(SecretNotFoundError):
        vault.reveal("db-password")
    with pytest.raises(SecretNotFoundError):
        vault.delete("db-password")
    with db.connect() as c:
        rows = c.execute(select(vault_secret_versions)).all()
    assert len(rows) == 2 and all(r.ciphertext is None for r in rows)
    meta = vault.put("db-password", b"three", description="again")
    assert meta.current_version == 3 and meta.deleted_at is None
    assert vault.reveal("db-password").expose() == b"three"
    assert [m.name for m in vault.list()] == ["db-password"]


def test_concurrent_rotation_is_refused(db: Database, vault: Vault, clock: FakeClock) -> None:
    vault.put("x", b"1")
    store = SqlSecretStore(db)
    meta = store.get("x")
    assert meta is not None
    vault.rotate("x", b"2")
    from tabard.vault import SecretVersion
    stale = SecretVersion("x", 2, clock.now(),
                          envelope=EnvelopeCipher(b"k" * 32).seal("x", 2, b"3"))
    with pytest.raises(SecretVersionConflictError):
        store.add_version(meta, stale, expected_current=1, previous_expires_at=None)


@pytest.mark.parametrize("write_behind", [None, timedelta(milliseconds=20)],
                         ids=["synchronous", "write-behind"])
def test_leases_list_and_revoke_by_agent_and_instance(db: Database, clock: FakeClock,
                                                      write_behind: timedelta | None) -> None:
    leases = Leases(SqlLeaseStore(db), clock, write_behind=write_behind)
    a1 = leases.record(provider=ProviderKind.STATIC, route="jira", agent="assistant",
                       agent_instance="spiffe://td/agent/assistant/instance/1", user="alice",
                       expires_at=clock.now() + timedelta(minutes=1), secret_name="jira",
                       secret_version=3)
    clock.advance(1)
    a2 = leases.record(provider=ProviderKind.DOWNSTREAM_JWT, route="gh", agent="assistant",
                       agent_instance="spiffe://td/agent/assistant/instance/2", user="bob",
                       expires_at=clock.now() + timedelta(seconds=30))
    clock.advance(1)
    other = leases.record(provider=ProviderKind.CLIENT_CREDENTIALS, route="gh",
                          agent="scanner", agent_instance="spiffe://td/agent/scanner/instance/9",
                          user=None, expires_at=None)
    assert leases.get(a1.id) == a1
    assert [x.id for x in leases.list(LeaseQuery())] == [other.id, a2.id, a1.id]
    assert [x.id for x in leases.list(LeaseQuery(agent="assistant"))] == [a2.id, a1.id]
    assert [x.id for x in leases.list(LeaseQuery(secret_name="jira"))] == [a1.id]
    assert leases.revoke_instance("spiffe://td/agent/assistant/instance/2") == 1
    assert not leases.is_active(a2.id) and leases.is_active(a1.id)
    assert leases.revoke_agent("assistant") == 1  # a2 was revoked already
    assert leases.revoke_agent("assistant") == 0
    active = leases.list(LeaseQuery(active_at=clock.now()))
    assert [x.id for x in active] == [other.id]
    clock.advance(timedelta(minutes=5))
    assert leases.is_active(other.id)  # no expiry: active until revoked
    revoked = leases.revoke(other.id)
    assert revoked.revoked_at == clock.now()
    assert leases.revoke(other.id).revoked_at == revoked.revoked_at
    assert leases.list(LeaseQuery(active_at=clock.now())) == []
    assert leases.close()


def test_lease_batches_go_in_one_transaction(db: Database, clock: FakeClock) -> None:
    from tabard.vault import Lease

    store = SqlLeaseStore(db)
    batch = [Lease(id=f"l{n}", provider=ProviderKind.STATIC, route="r", agent="assistant",
                   agent_instance=None, user=None, issued_at=clock.now(), expires_at=None)
             for n in range(3)]
    store.add_many(batch)
    store.add_many([])
    assert [store.get(f"l{n}") for n in range(3)] == batch
    clash = [Lease(id="l9", provider=ProviderKind.STATIC, route="r", agent=None,
                   agent_instance=None, user=None, issued_at=clock.now(), expires_at=None),
             batch[0]]
    with pytest.raises(IntegrityError):
        store.add_many(clash)
    assert store.get("l9") is None  # all or none
