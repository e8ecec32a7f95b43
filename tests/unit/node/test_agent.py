"""The node agent against the in-memory server, with a fake clock: identity, caches, rotation."""

from __future__ import annotations

import asyncio
import os
import random
import stat
import subprocess
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tabard.attestation.unix import PeerCredentials, ProcessEvidence, attest_process
from tabard.clock import FakeClock
from tabard.node import (
    AgentTimings,
    Backoff,
    JoinTokenRequiredError,
    NodeAgent,
    NodeStateStore,
    NoIdentityError,
    ServerRefusedError,
    ServerUnavailableError,
)
from tests.unit.node.conftest import FAST, UID_SELECTORS
from tests.unit.node.fake_server import FakeNodeServer


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


def me() -> ProcessEvidence:
    return attest_process(PeerCredentials(os.getpid(), os.getuid(), os.getgid()))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> FakeNodeServer:
    return FakeNodeServer(clock=clock)


def agent_for(
    server: FakeNodeServer, clock: FakeClock, data: Path | None, token: str | None = "new",
    timings: AgentTimings = FAST,
) -> NodeAgent:
    join = server.new_join_token() if token == "new" else token
    return NodeAgent(
        server, clock=clock, state=NodeStateStore(data) if data else None, join_token=join,
        timings=timings,
    )


def test_join_token_attestation_persists_and_a_restart_needs_no_token(
    server: FakeNodeServer, clock: FakeClock, tmp_path: Path
) -> None:
    data = tmp_path / "node"

    async def body() -> None:
        first = agent_for(server, clock, data)
        await first.start()
        node_id = first.node_spiffe_id
        await first.stop()
        assert str(node_id) == f"spiffe://example.org/node/{server.node_id}"
        assert stat.S_IMODE((data / "node-key.pem").stat().st_mode) == 0o600
        assert stat.S_IMODE(data.stat().st_mode) == 0o700

        second = agent_for(server, clock, data, token=None)
        await second.start()
        assert second.node_spiffe_id == node_id
        await second.stop()
        assert server.calls["attest"] == 1
        # every client the node used was authenticated with its node SVID
        assert {sid for sid, _ in server.clients} == {node_id}

    run(body)


def test_without_state_a_join_token_is_required(
    server: FakeNodeServer, clock: FakeClock, tmp_path: Path
) -> None:
    async def body() -> None:
        with pytest.raises(JoinTokenRequiredError):
            await agent_for(server, clock, tmp_path, token=None).start()

    run(body)


def test_a_used_join_token_is_refused(
    server: FakeNodeServer, clock: FakeClock, tmp_path: Path
) -> None:
    token = server.new_join_token()

    async def body() -> None:
        agent = agent_for(server, clock, tmp_path / "a", token=token)
        await agent.start()
        await agent.stop()
        with pytest.raises(ServerRefusedError) as info:
            await agent_for(server, clock, tmp_path / "b", token=token).start()
        assert info.value.code == "invalid_join_token"

    run(body)


def test_an_expired_stored_svid_needs_a_new_token(
    server: FakeNodeServer, clock: FakeClock, tmp_path: Path
) -> None:
    async def body() -> None:
        agent = agent_for(server, clock, tmp_path)
        await agent.start()
        await agent.stop()
        clock.advance(timedelta(hours=2))
        with pytest.raises(JoinTokenRequiredError):
            await agent_for(server, clock, tmp_path, token=None).start()

    run(body)


def test_node_svid_is_renewed_at_half_life(
    server: FakeNodeServer, clock: FakeClock, tmp_path: Path
) -> None:
    async def body() -> None:
        agent = agent_for(server, clock, tmp_path)
        await agent.start()
        first_key = (tmp_path / "node-key.pem").read_bytes()
        clock.advance(timedelta(minutes=29))
        await asyncio.sleep(0.5)
        assert server.calls["renew"] == 0
        clock.advance(timedelta(minutes=2))
        for _ in range(50):
            if server.calls["renew"]:
                break
            await asyncio.sleep(0.1)
        assert server.calls["renew"] == 1
        assert (tmp_path / "node-key.pem").read_bytes() != first_key  # a fresh key each time
        await agent.stop()

    run(body)


def test_jwt_svids_are_cached_until_half_life(server: FakeNodeServer, clock: FakeClock) -> None:
    server.add_entry("spiffe://example.org/j", UID_SELECTORS, jwt_ttl=300)

    async def body() -> None:
        agent = agent_for(server, clock, None)
        await agent.start()
        ev = me()
        first = await agent.jwt_svids(ev, ["aud"])
        clock.advance(100)
        assert await agent.jwt_svids(ev, ["aud"]) == first
        other = await agent.jwt_svids(ev, ["other"])
        assert other != first
        assert server.calls["mint_jwt_svid"] == 2
        clock.advance(60)  # 160 s > half of 300 s
        renewed = await agent.jwt_svids(ev, ["aud"])
        assert renewed[0][1] != first[0][1]
        assert server.calls["mint_jwt_svid"] == 3
        await agent.stop()

    run(body)


def test_x509_svids_are_pre_minted_and_rotated_at_half_life(
    server: FakeNodeServer, clock: FakeClock
) -> None:
    server.add_entry("spiffe://example.org/x", UID_SELECTORS, x509_ttl=100)
    slow = AgentTimings(sync_interval=60, tick=60, seen_interval=60)

    async def body() -> None:
        agent = agent_for(server, clock, None, timings=slow)
        await agent.start()
        assert await agent.rotate_due() == 1  # pre-minted before any workload asked
        view = await agent.x509_view(me())
        serial = view.svids[0][1].chain[0].serial_number
        clock.advance(40)
        assert await agent.rotate_due() == 0
        clock.advance(20)
        assert await agent.rotate_due() == 1
        again = await agent.x509_view(me())
        assert again.svids[0][1].chain[0].serial_number != serial
        assert server.calls["x509_svids"] == 2
        await agent.stop()

    run(body)


def test_entry_changes_replace_cached_svids(server: FakeNodeServer, clock: FakeClock) -> None:
    entry = server.add_entry("spiffe://example.org/old", UID_SELECTORS)

    async def body() -> None:
        agent = agent_for(server, clock, None)
        await agent.start()
        view = await agent.x509_view(me())
        assert str(view.svids[0][1].spiffe_id) == "spiffe://example.org/old"
        server.update_entry(entry.id, spiffe_id="spiffe://example.org/new")
        await agent.sync_once()
        view = await agent.x509_view(me())
        assert str(view.svids[0][1].spiffe_id) == "spiffe://example.org/new"
        server.update_entry(entry.id, selectors=frozenset({"unix:uid:4242"}))
        await agent.sync_once()
        with pytest.raises(NoIdentityError):
            await agent.x509_view(me())
        await agent.stop()

    run(body)


def test_instances_of_exited_processes_are_dropped(
    server: FakeNodeServer, clock: FakeClock
) -> None:
    child = subprocess.Popen(["sleep", "30"])

    async def body() -> None:
        ev = attest_process(PeerCredentials(child.pid, 0, 0))
        server.add_entry(
            "spiffe://example.org/t/instance/{instance}", (f"unix:path:{ev.exe_path}",)
        )
        agent = agent_for(server, clock, None)
        await agent.start()
        view = await agent.x509_view(ev)
        instance = agent.instances_of(ev.process_key)[0]
        assert view.svids[0][1].spiffe_id == instance.spiffe_id
        agent.collect_garbage()
        assert agent.instances_of(ev.process_key)
        child.kill()
        child.wait()
        agent.collect_garbage()
        assert agent.instances_of(ev.process_key) == []
        assert all(k[1] != instance.instance_id for k in agent.cached_x509())
        await agent.stop()

    try:
        run(body)
    finally:
        child.kill()
        child.wait()


def test_server_outage_is_served_from_cache_until_expiry(
    server: FakeNodeServer, clock: FakeClock
) -> None:
    server.add_entry("spiffe://example.org/c", UID_SELECTORS, x509_ttl=100)
    slow = AgentTimings(sync_interval=60, tick=60, seen_interval=60)

    async def body() -> None:
        agent = agent_for(server, clock, None, timings=slow)
        await agent.start()
        first = await agent.x509_view(me())
        server.available = False
        clock.advance(70)  # past half-life: rotation fails, the cached SVID is still valid
        with pytest.raises(ServerUnavailableError):
            await agent.rotate_due()
        assert not agent.server_reachable
        again = await agent.x509_view(me())
        assert again.svids[0][1] is first.svids[0][1]
        clock.advance(40)  # expired now
        agent.collect_garbage()
        with pytest.raises(ServerUnavailableError):
            await agent.x509_view(me())
        server.available = True
        await agent.sync_once()
        assert agent.server_reachable
        fresh = await agent.x509_view(me())
        assert fresh.svids[0][1].expires_at > clock.now()
        await agent.stop()

    run(body)


def test_backoff_uses_full_jitter_under_a_growing_cap() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(7))
    delays = [backoff.next() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(10)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[5:]) > 2.0  # it does grow
    assert len(set(delays)) == 10  # and it is jittered
    backoff.reset()
    assert backoff.next() <= 0.5
