"""Token grants are written to the audit log before the token exists, and refused when the
log cannot take them (fail closed); the log never holds the token itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tabard.audit import AuditLog
from tabard.oauth import AuthorizationServer
from tabard.oauth.errors import TemporarilyUnavailable
from tabard.store import Database
from tabard.store.audit import SqlAuditStore
from tests.unit.oauth.conftest import World, agent_id, instance


@pytest.fixture
def audited(world: World, tmp_path: Path) -> Iterator[tuple[World, AuditLog, Database]]:
    db = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    db.migrate()
    log = AuditLog(SqlAuditStore(db), world.clock, trust_domain="example.org", timeout=10)
    server = world.server
    world.server = AuthorizationServer(
        bundle=world.authority.bundle, keys=server._keys, tokens=world.tokens,
        clients=world.clients, agents=world.agents, users=world.users, clock=world.clock,
        max_chain_depth=3, demo_keys=server._demo_keys, issuer=server.issuer, audit=log)
    try:
        yield world, log, db
    finally:
        log.close()
        db.dispose()


def test_a_grant_is_recorded_with_its_chain_and_without_the_token(
        audited: tuple[World, AuditLog, Database]) -> None:
    world, log, _db = audited
    first = world.exchange(world.user_token("alice", "tools:*"), instance("helper"),
                           scope="tools:jira.*", resource=agent_id("sub"))
    second = world.exchange(first["access_token"], instance("sub", "2"),
                            scope="tools:jira.read")
    grants = log.records(kind="token_grant")
    assert len(grants) == 2
    body = grants[1].body()
    assert body["who"]["user"] == "alice"
    assert body["who"]["chain"] == [str(instance("helper")), str(instance("sub", "2"))]
    assert body["details"]["scope"] == "tools:jira.read"
    assert body["details"]["jti"] == world.claims(second["access_token"])["jti"]
    assert body["details"]["parent_jti"] == world.claims(first["access_token"])["jti"]
    exported = b"".join(r.entry for r in log.export())
    for issued in (first, second):
        assert issued["access_token"].encode() not in exported
    assert log.verify().ok


def test_a_grant_the_log_cannot_record_is_refused_and_served_again_after(
        audited: tuple[World, AuditLog, Database]) -> None:
    world, _log, db = audited
    user = world.user_token("alice", "tools:*")
    with db.begin() as c:
        c.execute(text("CREATE TRIGGER audit_block BEFORE INSERT ON audit_records "
                       "BEGIN SELECT RAISE(ABORT, 'audit store is read-only'); END"))
    with pytest.raises(TemporarilyUnavailable) as refused:
        world.exchange(user, instance("helper"), scope="tools:jira.*")
    assert refused.value.status == 503
    assert world.tokens.records == {}
    with db.begin() as c:
        c.execute(text("DROP TRIGGER audit_block"))
    issued = world.exchange(user, instance("helper"), scope="tools:jira.*")
    assert world.tokens.get(world.claims(issued["access_token"])["jti"]) is not None
