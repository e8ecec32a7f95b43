"""SCIM tokens: shown once, stored as digests, a separate kind from admin tokens."""

from __future__ import annotations

import pytest

from tabard.clock import FakeClock
from tabard.directory import (
    SCIM_TOKEN_PREFIX,
    TOKEN_PREFIX,
    AdminTokenService,
    Directory,
)
from tabard.errors import Invalid, NotFound, Unauthenticated
from tabard.store import Database, SqlAdminTokenStore


def test_a_token_authenticates_until_revoked(directory: Directory) -> None:
    tokens = directory.scim_tokens
    issued = tokens.create("corporate-idp")
    assert issued.token.startswith(SCIM_TOKEN_PREFIX) and len(issued.token) > 50
    assert issued.token not in repr(issued)
    client = tokens.authenticate(issued.token)
    assert (client.token_id, client.name, client.actor) == (
        issued.record.id, "corporate-idp", "scim:corporate-idp")
    tokens.revoke(issued.record.id)
    with pytest.raises(Unauthenticated):
        tokens.authenticate(issued.token)
    with pytest.raises(NotFound):
        tokens.revoke("no-such-token")


@pytest.mark.parametrize("presented", [None, "", "Bearer", SCIM_TOKEN_PREFIX + "x" * 43,
                                       SCIM_TOKEN_PREFIX + "a" * 300, "random"])
def test_anything_else_is_unauthenticated(directory: Directory, presented: str | None) -> None:
    directory.scim_tokens.create("idp")
    with pytest.raises(Unauthenticated):
        directory.scim_tokens.authenticate(presented)


def test_admin_and_scim_tokens_do_not_open_each_other(directory: Directory,
                                                       tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/admin.db")
    db.migrate()
    try:
        admin = AdminTokenService(SqlAdminTokenStore(db), FakeClock())
        admin_token = admin.create("ops").token
        scim_token = directory.scim_tokens.create("idp").token
        assert admin_token.startswith(TOKEN_PREFIX)
        with pytest.raises(Unauthenticated):
            directory.scim_tokens.authenticate(admin_token)
        with pytest.raises(Unauthenticated):
            admin.authenticate(scim_token)
    finally:
        db.dispose()


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "semi;colon"])
def test_token_names_are_checked(directory: Directory, name: str) -> None:
    with pytest.raises(Invalid):
        directory.scim_tokens.create(name)
