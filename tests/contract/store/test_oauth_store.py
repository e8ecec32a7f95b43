"""The AS's token and client stores on SQLite and PostgreSQL: records, revocation down the
exchange tree, client registration."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from tabard.oauth import IssuedToken, OAuthClient
from tabard.store import Database, SqlOAuthClientStore, SqlOAuthTokenStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def token(jti: str, parent: str | None = None) -> IssuedToken:
    return IssuedToken(
        jti=jti, subject="alice", client_id="spiffe://example.org/agent/a/instance/1",
        audience=("https://mcp.example.org",), scope="tools:jira.*",
        act={"sub": "spiffe://example.org/agent/a/instance/1",
             "act": {"sub": "spiffe://example.org/agent/b/instance/2"}},
        checksum="sha256:" + "ab" * 32, parent_jti=parent, issued_at=T0,
        expires_at=T0 + timedelta(minutes=5))


def test_token_records_round_trip(db: Database) -> None:
    store = SqlOAuthTokenStore(db)
    store.add(token("root"))
    assert store.get("root") == token("root")
    assert store.get("missing") is None


def test_revocation_reaches_every_token_exchanged_below(db: Database) -> None:
    store = SqlOAuthTokenStore(db)
    for jti, parent in (("root", None), ("a", "root"), ("b", "root"), ("a1", "a"),
                        ("a1x", "a1"), ("other", None)):
        store.add(token(jti, parent))
    at = T0 + timedelta(minutes=1)
    assert store.revoke_tree("a", at) == 3
    assert {j for j in ("root", "a", "b", "a1", "a1x", "other")
            if (r := store.get(j)) is not None and r.revoked_at is not None} == {"a", "a1", "a1x"}
    assert store.get("a1x").revoked_at == at  # type: ignore[union-attr]
    assert store.revoke_tree("a", at) == 0
    assert store.revoke_tree("root", at) == 2
    assert store.revoke_tree("unknown", at) == 0
    assert store.get("other").revoked_at is None  # type: ignore[union-attr]


def test_clients_are_put_listed_and_deleted(db: Database) -> None:
    store = SqlOAuthClientStore(db)
    spiffe = OAuthClient(client_id="spiffe://example.org/agent/a/instance/1", client_name="a",
                         auth_method="spiffe",
                         grant_types=("urn:ietf:params:oauth:grant-type:token-exchange",),
                         scope="tools:*", jwks=None, created_at=T0)
    keyed = OAuthClient(client_id="tc_x", client_name="ci", auth_method="private_key_jwt",
                        grant_types=("urn:ietf:params:oauth:grant-type:jwt-bearer",),
                        scope=None, jwks={"keys": [{"kty": "EC", "kid": "k"}]},
                        created_at=T0 + timedelta(seconds=1), software_id="s",
                        software_version="1")
    store.put(spiffe)
    store.put(keyed)
    assert store.get("tc_x") == keyed
    assert store.list() == [spiffe, keyed]
    store.put(dataclasses.replace(spiffe, client_name="renamed"))
    assert store.get(spiffe.client_id).client_name == "renamed"  # type: ignore[union-attr]
    assert store.delete("tc_x") is True and store.delete("tc_x") is False
    assert [c.client_id for c in store.list()] == [spiffe.client_id]
