"""The kill switch's REST API and its signal stream on a real (in-process) uvicorn: first
connection gets a resync, ``?after=`` and ``Last-Event-ID`` resume exactly after the given
event, a client too far behind is resynced, heartbeats flow, live changes are pushed, and
the :class:`SignalFollower` keeps its kill list in step."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn

from tabard.app import ControlPlane, build_control_plane
from tabard.config import Settings
from tabard.server import create_app
from tabard.server.routes import signals as signal_routes
from tabard.signals import KillTarget, SignalFollower, SseMessage, SseParser, TargetKind

TD = "example.org"
INSTANCE = f"spiffe://{TD}/agent/trading/instance/i-1"


@dataclass
class Served:
    plane: ControlPlane
    url: str
    token: str
    port: int
    running: tuple[uvicorn.Server, threading.Thread]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"authorization": f"Bearer {self.token}"})


def start(plane: ControlPlane, port: int = 0) -> tuple[uvicorn.Server, threading.Thread]:
    services = plane.server_services()
    services.signal_heartbeat = 0.2
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                                           log_config=None, lifespan="off",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread


def stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.delenv("TABARD_KEK", raising=False)
    plane = build_control_plane(Settings(trust_domain=TD, data_dir=tmp_path / "data"))
    running = start(plane)
    port = running[0].servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(plane, f"http://127.0.0.1:{port}", plane.admin_tokens.create("ops").token,
                     port, running)
    finally:
        stop(*running)
        plane.close()


def read(http: httpx.Client, n: int, *, heartbeats: list[int] | None = None,
         **kwargs: Any) -> list[SseMessage]:
    """The first ``n`` messages of one stream connection."""
    parser, out = SseParser(), list[SseMessage]()
    with http.stream("GET", "/api/v1/signals/stream", **kwargs) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for chunk in r.iter_text():
            if heartbeats is not None and ": heartbeat" in chunk:
                heartbeats.append(1)
            out.extend(parser.feed(chunk))
            if len(out) >= n:
                return out[:n]
    raise AssertionError("stream ended early")


def test_kill_rest_and_stream_resume_semantics(served: Served) -> None:
    http = served.http()
    user = http.post("/api/v1/kill/user/alice@example.org/suspend", json={"reason": "phish"})
    assert user.status_code == 200, user.text
    assert user.json()["event"]["id"] == 1
    narrowed = http.post(f"/api/v1/kill/instance/{quote(INSTANCE, safe='')}/narrow",
                         json={"reason": "contain", "read_only": True,
                               "blocked_categories": ["payments"], "approval_above": 30})
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["entries"][0]["narrowing"] == {
        "read_only": True, "blocked_categories": ["payments"], "approval_above": 30}
    again = http.post("/api/v1/kill/user/alice@example.org/suspend", json={})
    assert again.status_code == 409 and again.json()["code"] == "kill_conflict"
    bad = http.post("/api/v1/kill/instance/not-a-spiffe-id/suspend", json={})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_kill"
    assert http.post("/api/v1/kill/agent/ghost/suspend", json={}).status_code == 404
    assert http.post("/api/v1/kill/user/bob/resume", json={}).json()["event"] is None
    assert http.post("/api/v1/kill/user/alice@example.org/resume",
                     json={"reason": "reset"}).json()["event"]["id"] == 3

    # no position: the full state first
    first = read(http, 1)[0]
    assert first.event == "resync" and first.id == "3"
    state = json.loads(first.data)
    assert state["last_event_id"] == 3 and [e["kind"] for e in state["entries"]] == ["instance"]
    # resume after 1, by query and by header: events 2 and 3 exactly, ids as event ids
    for kwargs in ({"params": {"after": "1"}}, {"headers": {"last-event-id": "1"}}):
        got = read(http, 2, **kwargs)
        assert [(m.event, m.id) for m in got] == [("signal", "2"), ("signal", "3")]
        assert json.loads(got[1].data)["action"] == "resume"
    # heartbeats while nothing happens, then a live change is pushed
    heartbeats: list[int] = []
    result: list[SseMessage] = []
    reader = threading.Thread(target=lambda: result.extend(
        read(served.http(), 1, heartbeats=heartbeats, params={"after": "3"})))
    reader.start()
    time.sleep(0.6)
    http.post("/api/v1/kill/node/spiffe%3A%2F%2Fexample.org%2Fnode%2Fn1/suspend", json={})
    reader.join(10)
    assert heartbeats and [(m.event, m.id) for m in result] == [("signal", "4")]
    assert json.loads(result[0].data)["kind"] == "node"
    listed = http.get("/api/v1/kill").json()
    assert listed["last_event_id"] == 4 and len(listed["entries"]) == 2
    assert http.get("/api/v1/signals/state",
                    headers={"authorization": "Bearer nope"}).status_code == 401


def test_too_far_behind_or_ahead_is_resynced(served: Served,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signal_routes, "MAX_BACKLOG", 2)
    http = served.http()
    for i in range(4):
        http.post(f"/api/v1/kill/user/u{i}/suspend", json={})
    assert [m.id for m in read(http, 2, params={"after": "2"})] == ["3", "4"]
    behind = read(http, 1, params={"after": "1"})[0]
    assert behind.event == "resync" and json.loads(behind.data)["last_event_id"] == 4
    ahead = read(http, 1, params={"after": "99"})[0]  # e.g. a database restored from backup
    assert ahead.event == "resync" and ahead.id == "4"


def test_follower_keeps_its_kill_list_in_step(served: Served) -> None:
    http = served.http()
    http.post("/api/v1/kill/user/early/suspend", json={})

    async def main() -> None:
        client = httpx.AsyncClient(headers={"authorization": f"Bearer {served.token}"})
        follower = SignalFollower(lambda: client, served.url, heartbeat_timeout=2.0)
        task = asyncio.create_task(follower.run())
        try:
            await asyncio.wait_for(follower.synced.wait(), 10)
            assert follower.kill_list.last_event_id == 1
            sent = time.monotonic()
            await asyncio.to_thread(
                http.post, f"/api/v1/kill/instance/{quote(INSTANCE, safe='')}/suspend",
                json={"reason": "r"})
            while follower.kill_list.for_workload(INSTANCE) is None:
                assert time.monotonic() - sent < 5
                await asyncio.sleep(0.01)
            restriction = follower.kill_list.for_workload(INSTANCE)
            assert restriction is not None and restriction.suspension is not None
            assert restriction.suspension.target.kind is TargetKind.INSTANCE
        finally:
            task.cancel()
            await client.aclose()

    asyncio.run(main())


def test_follower_catches_up_after_the_server_comes_back(served: Served) -> None:
    """Changes made while the follower is cut off arrive after reconnection (``?after=``),
    in order; the periodic resync is a second path to the same state."""
    assert served.plane.kill is not None
    switch = served.plane.kill

    async def main() -> None:
        client = httpx.AsyncClient(headers={"authorization": f"Bearer {served.token}"})
        follower = SignalFollower(lambda: client, served.url, heartbeat_timeout=1.0,
                                  backoff_base=0.05, backoff_cap=0.2)
        seen: list[int] = []
        follower.on_change(lambda e: seen.append(e.id) if e is not None else None)
        task = asyncio.create_task(follower.run())
        try:
            await asyncio.wait_for(follower.synced.wait(), 10)
            await asyncio.to_thread(stop, *served.running)
            for i in range(3):  # written while no server answers
                await asyncio.to_thread(switch.suspend, KillTarget(TargetKind.USER, f"u{i}"),
                                        actor="admin:ops")
            served.running = await asyncio.to_thread(start, served.plane, served.port)
            deadline = time.monotonic() + 10
            while follower.kill_list.last_event_id < 3:
                assert time.monotonic() < deadline, seen
                await asyncio.sleep(0.02)
            assert seen == [1, 2, 3] and follower.resyncs == 1  # replayed, not resynced
            assert follower.kill_list.snapshot() == switch.state()
        finally:
            task.cancel()
            await client.aclose()

    asyncio.run(main())
