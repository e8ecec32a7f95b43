"""The ScimTokenStore contract on SQLite and PostgreSQL, through the token service."""

from __future__ import annotations

import pytest

from tabard.clock import FakeClock
from tabard.directory import ScimTokenService
from tabard.errors import NotFound, Unauthenticated
from tabard.store import Database, SqlAdminTokenStore, SqlScimTokenStore


def test_tokens_are_stored_as_digests_used_and_revoked(db: Database) -> None:
    clock = FakeClock()
    service = ScimTokenService(SqlScimTokenStore(db), clock)
    issued = service.create("idp")
    [record] = service.list()
    assert record == issued.record
    assert issued.token not in repr(record) and record.digest != issued.token
    clock.advance(60)
    assert service.authenticate(issued.token).name == "idp"
    [used] = service.list()
    assert used.last_used_at == clock.now()
    service.revoke(record.id)
    with pytest.raises(Unauthenticated):
        service.authenticate(issued.token)
    with pytest.raises(NotFound):
        service.revoke(record.id)


def test_scim_and_admin_tokens_are_separate_tables(db: Database) -> None:
    service = ScimTokenService(SqlScimTokenStore(db), FakeClock())
    service.create("idp")
    assert SqlAdminTokenStore(db).list() == []
