"""What a suspension does beyond the signal, in-process over a whole control plane: the
agent's outstanding OAuth access tokens (and tokens exchanged from them) and vault leases are
revoked, its lifecycle moves to suspended (and back on resume, only because the kill switch
moved it), its suspension hook runs with its result recorded, and every step is in the
audit log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tabard.app import ControlPlane, build_control_plane
from tabard.config import Settings
from tabard.oauth.ports import IssuedToken
from tabard.registry import AgentState
from tabard.signals import KillTarget, Narrowing, TargetKind
from tabard.store import SqlOAuthTokenStore
from tabard.vault.model import ProviderKind
from tests.fakes.agents import spec

TD = "example.org"
INSTANCE = f"spiffe://{TD}/agent/trading/instance/i1"


@pytest.fixture
def plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlPlane]:
    monkeypatch.delenv("TABARD_KEK", raising=False)
    p = build_control_plane(Settings(trust_domain=TD, data_dir=tmp_path / "data"))
    try:
        yield p
    finally:
        p.close()


def token(jti: str, *, subject: str, actor: str | None, parent: str | None = None
          ) -> IssuedToken:
    now = datetime.now(UTC)
    return IssuedToken(jti=jti, subject=subject, client_id="gateway", audience=("api",),
                       scope=None, act={"sub": actor} if actor else None, checksum=None,
                       parent_jti=parent, issued_at=now, expires_at=now + timedelta(hours=1))


def test_suspension_revokes_tokens_and_leases_runs_the_hook_and_is_audited(
        plane: ControlPlane) -> None:
    plane.directory.people.create_user({"userName": "carol"})
    plane.agents.agents.register(spec("trading", parent_id=f"spiffe://{TD}/node/n1"),
                                 actor="admin:ops", activate=True)
    tokens = SqlOAuthTokenStore(plane.db)
    tokens.add(token("t1", subject="alice", actor=INSTANCE))
    tokens.add(token("t2", subject="alice", actor="spiffe://example.org/agent/sub/instance/x",
                     parent="t1"))
    tokens.add(token("t3", subject="alice", actor=f"spiffe://{TD}/agent/other/instance/o"))
    leases = plane.vault.leases
    mine = leases.record(provider=ProviderKind.STATIC, route="r", agent="trading",
                         agent_instance=INSTANCE, user="alice", expires_at=None)
    other = leases.record(provider=ProviderKind.STATIC, route="r", agent="other",
                          agent_instance=None, user="alice", expires_at=None)
    hooks = plane.settings.data_dir / "hooks" / "suspend"
    hooks.mkdir(parents=True)
    seen = plane.settings.data_dir / "hook-input.json"
    hook = hooks / "trading"
    hook.write_text(f"#!/bin/sh\ncat > {seen}\necho rolled back 3 orders >&2\n")
    hook.chmod(0o755)

    assert plane.kill is not None
    target = KillTarget(TargetKind.AGENT, "trading")
    plane.kill.suspend(target, actor="admin:ops", reason="incident 42")
    assert plane.agents.agents.get("trading").state is AgentState.SUSPENDED
    assert [tokens.get(j).revoked_at is not None for j in ("t1", "t2", "t3")] == [
        True, True, False]
    assert not leases.is_active(mine.id) and leases.is_active(other.id)

    assert plane.audit is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ops = [r.body() for r in plane.audit.records(kind="kill_switch")]
        if any(o["what"]["operation"] == "kill.hook" for o in ops):
            break
        time.sleep(0.05)
    by_op = {o["what"]["operation"]: o for o in ops}
    assert list(by_op) == ["kill.suspend", "kill.revoke", "kill.hook"]
    assert by_op["kill.suspend"]["who"]["agent"] == "trading"
    assert by_op["kill.revoke"]["details"] == {"event_id": 1, "tokens": 2, "leases": 1}
    assert by_op["kill.hook"]["outcome"] == "success"
    assert "rolled back 3 orders" in by_op["kill.hook"]["details"]["detail"]
    assert '"reason": "incident 42"' in seen.read_text()

    # every signal bumps the policy engine's facts epoch: no cached decision survives
    epoch = plane.policies.engine.facts_epoch
    plane.kill.narrow(KillTarget(TargetKind.USER, "alice"), Narrowing(approval_above=5),
                      actor="admin:ops")
    assert plane.policies.engine.facts_epoch == epoch + 1

    # resume: the kill switch moved the lifecycle, so it moves it back
    plane.kill.resume(target, actor="admin:ops", reason="closed")
    assert plane.agents.agents.get("trading").state is AgentState.ACTIVE
    # a lifecycle suspension made otherwise is left alone by the kill switch's resume
    plane.agents.agents.suspend("trading", actor="tabard", reason="orphan")
    plane.kill.narrow(target, Narrowing(read_only=True), actor="admin:ops")
    plane.kill.resume(target, actor="admin:ops")
    assert plane.agents.agents.get("trading").state is AgentState.SUSPENDED
