"""The gateway's per-request caches as ``tabard gateway`` and ``tabard serve`` wire them
(``build_control_plane``): defaults from ``[oauth]``/``[vault]``, dropped at once in-process
on kill-switch suspensions, agent and directory changes, and, in a second process over the
same database, on the kill-switch signal, whose suspension also revokes that process's
queued leases again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tabard.app import ControlPlane, build_control_plane
from tabard.config import Settings
from tabard.oauth import ASSERTION_JWT_SPIFFE, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_JWT, InvalidToken
from tabard.signals import KillTarget, TargetKind
from tabard.spiffe import SpiffeId
from tabard.vault import Lease, ProviderKind
from tests.fakes.agents import spec

TD = "example.org"
AS = "https://as.example.org"
RESOURCE = "https://gateway.example.org/mcp/tools"
INSTANCE = SpiffeId.parse(f"spiffe://{TD}/agent/trading/instance/i1")


def settings(data: Path, **extra: Any) -> Settings:
    return Settings.model_validate({"trust_domain": TD, "data_dir": str(data),
                                    "oauth": {"issuer": AS, "demo_issuer": True}, **extra})


@pytest.fixture
def plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlPlane]:
    monkeypatch.delenv("TABARD_KEK", raising=False)
    p = build_control_plane(settings(tmp_path / "data"))
    p.directory.people.create_user({"userName": "carol"})
    p.directory.people.create_user({"userName": "alice"})
    p.agents.agents.register(spec("trading", parent_id=f"spiffe://{TD}/node/n1"),
                             actor="admin:ops", activate=True)
    try:
        yield p
    finally:
        p.close()


def access_token(plane: ControlPlane) -> str:
    assert plane.oauth is not None
    svid = plane.authority.mint_jwt_svid(INSTANCE, AS)
    return str(plane.oauth.token({
        "grant_type": [GRANT_TOKEN_EXCHANGE],
        "subject_token": [plane.oauth.mint_user_token("alice")],
        "subject_token_type": [TOKEN_TYPE_JWT],
        "client_assertion_type": [ASSERTION_JWT_SPIFFE], "client_assertion": [svid],
        "actor_token": [svid], "actor_token_type": [TOKEN_TYPE_JWT],
        "resource": [RESOURCE]})["access_token"])


def accepted(plane: ControlPlane, token: str) -> bool:
    assert plane.oauth is not None
    try:
        plane.oauth.verify_access_token(token)
    except InvalidToken:
        return False
    return True


def lease(plane: ControlPlane) -> Lease:
    return plane.vault.leases.record(provider=ProviderKind.STATIC, route="tools",
                                     agent="trading", agent_instance=str(INSTANCE),
                                     user="alice", expires_at=None)


def test_the_caches_are_on_with_the_documented_defaults(plane: ControlPlane) -> None:
    assert plane.oauth is not None and plane.oauth.verified.window == 1.0
    assert plane.vault.secrets.reveal_ttl == timedelta(seconds=5)
    assert plane.vault.leases.write_behind
    token = access_token(plane)
    assert accepted(plane, token) and len(plane.oauth.verified) == 1


def test_a_suspension_ends_a_cached_token_and_queued_leases_at_once(plane: ControlPlane
                                                                    ) -> None:
    token = access_token(plane)
    assert accepted(plane, token)
    queued = lease(plane)
    assert plane.kill is not None
    plane.kill.suspend(KillTarget(TargetKind.AGENT, "trading"), actor="admin:ops",
                       reason="incident")
    assert not accepted(plane, token)
    assert not plane.vault.leases.is_active(queued.id)


def test_agent_and_directory_changes_drop_cached_tokens_at_once(plane: ControlPlane) -> None:
    token = access_token(plane)
    assert accepted(plane, token)
    plane.agents.agents.suspend("trading", actor="admin:ops", reason="review")
    assert not accepted(plane, token)
    plane.agents.agents.resume("trading", actor="admin:ops", reason="done")
    assert accepted(plane, token)
    plane.directory.people.set_active("alice", False)
    assert not accepted(plane, token)


def test_another_process_hears_the_suspension_and_revokes_its_queued_leases(
        plane: ControlPlane, tmp_path: Path) -> None:
    # a `tabard gateway` process over the same database, its leases held in its queue
    gateway = build_control_plane(settings(tmp_path / "data",
                                           vault={"lease_write_behind": "60s"}))
    try:
        token = access_token(plane)
        assert accepted(gateway, token)
        queued = lease(gateway)
        assert gateway.vault.leases.queued == 1
        assert plane.kill is not None
        plane.kill.suspend(KillTarget(TargetKind.AGENT, "trading"), actor="admin:ops")
        assert gateway.kill is not None
        assert gateway.kill.hub.check() == 1  # what its signals loop does every 50 ms
        assert not accepted(gateway, token)  # its cache was dropped with the signal
        deadline = time.monotonic() + 10
        while gateway.vault.leases.is_active(queued.id) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not gateway.vault.leases.is_active(queued.id)
    finally:
        gateway.close()
