"""Kill-switch propagation latency against a real ``tabard dev`` (server + node).

The bench registers an agent whose instance-template entry matches this very process, then
repeats ``KILLS`` times: open a Workload API stream (``FetchX509SVID``, py-spiffe's generated
stub) and receive the SVID; ``POST /api/v1/kill/agent/<name>/suspend``; measure from just
before that REST call until

* (a) a signal-stream subscriber (``GET /api/v1/signals/stream``, server-sent events, read
  on its own thread) sees the event, and
* (b) the node ends the Workload API stream with ``PERMISSION_DENIED`` (it follows the same
  stream over its mTLS node API connection);

then resume and wait until the node serves the SVID again. p50 and p99 of each sit beside
the X509-SVID TTL of the entry: without the kill switch, the time an issued SVID stays
usable. The goal (ARCHITECTURE §8) is p99 ≤ 200 ms.

Then the multi-process deployment of issue 7 (``tests/support/kill_world.py``): one
``tabard server``, three ``tabard gateway`` processes over the same SQLite database (they
follow the signal log by polling its head, ``[signals] poll_interval``), one ``tabard node``;
``REPLICA_KILLS`` suspend/resume cycles of one agent while two others call through every
gateway, each measured from the suspend call's return to (c) each gateway's first denial
of the agent's JWT-SVID, (d) the node dropping its SVID, (e) the slowest of the four. And
the CPU an idle gateway process spends with the 50 ms head poll, beside one that only
reads the log every 2 s.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
from cryptography import x509
from spiffe._proto import workload_pb2 as pb
from spiffe._proto import workload_pb2_grpc as pb_grpc
from tests.support.kill_world import GatewayProcess, KillWorld, iter_cycles
from tests.support.platform import DevPlatform

from bench.harness import Figure, percentile
from tabard.signals import SseParser

__all__ = ["KILLS", "REPLICA_KILLS", "run"]

KILLS = 120
REPLICA_KILLS = 120
IDLE_S = 10.0
TRUST_DOMAIN = "bench.example"
AGENT = "kill-bench"
_HEADER = (("workload.spiffe.io", "true"),)
_GOAL_S = 0.2


class _Subscriber:
    """Reads the signal stream on a thread; records when each event id arrived."""

    def __init__(self, url: str, token: str) -> None:
        self.seen: dict[int, float] = {}
        self._cond = threading.Condition()
        self._client = httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=None),
                                    headers={"authorization": f"Bearer {token}"})
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        parser = SseParser()
        with self._client.stream("GET", "/api/v1/signals/stream") as response:
            for chunk in response.iter_text():
                now = time.perf_counter()
                for message in parser.feed(chunk):
                    if message.event == "resync":
                        self.ready.set()
                    elif message.event == "signal" and message.id is not None:
                        with self._cond:
                            self.seen[int(message.id)] = now
                            self._cond.notify_all()

    def wait(self, event_id: int, timeout: float = 10.0) -> float:
        with self._cond:
            if not self._cond.wait_for(lambda: event_id in self.seen, timeout):
                raise TimeoutError(f"signal {event_id} never reached the subscriber")
            return self.seen[event_id]


def _setup(dev: DevPlatform) -> httpx.Client:
    http = httpx.Client(base_url=dev.url, timeout=30,
                        headers={"authorization": f"Bearer {dev.admin_token}"})
    http.post("/api/v1/users", json={"user_name": "carol"}).raise_for_status()
    registered = http.post("/api/v1/agents", json={
        "name": AGENT, "owner": "carol", "purpose": "kill-switch bench",
        "model": {"provider": "a", "name": "b", "version": "1"}, "hosting": "local",
        "tier": "dev", "tools": ["t"], "image_digest": "sha256:" + "ab" * 32,
        "selectors": [f"unix:uid:{os.getuid()}",
                      f"unix:path:{os.path.realpath(sys.executable)}"],
        "policy_bindings": {"dev": "p"}, "activate": True})
    if registered.status_code >= 300:
        raise RuntimeError(f"agent register answered {registered.status_code}: "
                           f"{registered.text[:300]}")
    return http


def _open(stub: pb_grpc.SpiffeWorkloadAPIStub, timeout: float = 20.0) -> tuple[object, bytes]:
    """A FetchX509SVID stream that has delivered its first SVID (retrying while the node
    learns of the entry or the resume)."""
    deadline = time.monotonic() + timeout
    while True:
        call = stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=_HEADER)
        try:
            first = next(call)
            if first.svids:
                return call, first.svids[0].x509_svid
        except grpc.RpcError:
            pass
        call.cancel()
        if time.monotonic() > deadline:
            raise TimeoutError("the node does not serve the bench agent")
        time.sleep(0.01)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _replicas(ttl_ms: float) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="tabard-bench-killgw-") as tmp:
        world = KillWorld(Path(tmp), agents=("kill-bench", "other-a", "other-b"))
        with world:
            slow = GatewayProcess(world.base / "server", "gateway-2s-poll", {
                **world.gws[0].env, "TABARD_SIGNALS__POLL_INTERVAL": "2s"}).start()
            try:
                time.sleep(2.0)  # let start-up settle
                pids = {"poll": world.gws[0].process, "slow": slow.process}
                before = {k: _cpu_s(p.pid) for k, p in pids.items() if p is not None}
                time.sleep(IDLE_S)
                idle = {k: (_cpu_s(p.pid) - before[k]) / IDLE_S * 100
                        for k, p in pids.items() if p is not None}
            finally:
                slow.stop()
            stop = threading.Event()

            def traffic(agent: str) -> None:
                with httpx.Client(timeout=10) as client:
                    while not stop.is_set():
                        for gw in world.gws:
                            world.call(gw, agent, client)
                        stop.wait(0.02)

            threads = [threading.Thread(target=traffic, args=(a,), daemon=True)
                       for a in ("other-a", "other-b")]
            for t in threads:
                t.start()
            try:
                cycles = list(iter_cycles(world, "kill-bench", REPLICA_KILLS))
            finally:
                stop.set()
                for t in threads:
                    t.join(10)
    ms = 1000.0
    series = (("each of 3 gateways denies", [s for c in cycles for s in c.gateways]),
              ("node drops the SVID (3 gateways running)", [c.node for c in cycles]),
              ("all 3 gateways + node", [max([*c.gateways, c.node]) for c in cycles]))
    notes = [f"{REPLICA_KILLS} suspend/resume cycles: tabard server + 3 tabard gateway "
             "processes + tabard node over one SQLite database, two other agents calling "
             "through every gateway meanwhile; from the suspend call's return"]
    figures = []
    for label, samples in series:
        for pct in (50, 99):
            figures.append(Figure(
                name=f"kill switch → {label}, p{pct}", value=percentile(samples, pct) * ms,
                unit="ms", baseline_name="X509-SVID TTL", baseline=ttl_ms,
                goal="p99 ≤ 200 ms" if pct == 99 else "report", higher_is_better=False,
                goal_ratio=_GOAL_S * ms / ttl_ms if pct == 99 else None,
                notes=notes if (label, pct) == (series[0][0], 50) else []))
    figures.append(Figure(
        name="idle gateway CPU, signal head poll every 50 ms", value=idle["poll"], unit="%",
        baseline_name="idle gateway, log read every 2 s only", baseline=idle["slow"],
        goal="report", higher_is_better=False,
        notes=[f"CPU of one core over {IDLE_S:g} s with no traffic (/proc/<pid>/stat)"]))
    return figures


def run() -> list[Figure]:
    with (tempfile.TemporaryDirectory(prefix="tabard-bench-kill-") as tmp,
          DevPlatform(Path(tmp) / "dev", trust_domain=TRUST_DOMAIN) as dev):
        http = _setup(dev)
        subscriber = _Subscriber(dev.url, dev.admin_token)
        subscriber.ready.wait(10)
        channel = grpc.insecure_channel(dev.workload_socket)
        stub = pb_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]
        stream_s: list[float] = []
        node_s: list[float] = []
        ttl = 0.0
        for _ in range(KILLS):
            call, der = _open(stub)
            if not ttl:
                leaf = x509.load_der_x509_certificate(der)
                ttl = (leaf.not_valid_after_utc - leaf.not_valid_before_utc
                       ).total_seconds()
            start = time.perf_counter()
            answer = http.post(f"/api/v1/kill/agent/{AGENT}/suspend",
                               json={"reason": "bench"})
            answer.raise_for_status()
            event_id = answer.json()["event"]["id"]
            try:
                for _ in call:  # type: ignore[attr-defined]
                    pass
                raise RuntimeError("the Workload API stream ended without an error")
            except grpc.RpcError as exc:
                if exc.code() is not grpc.StatusCode.PERMISSION_DENIED:
                    raise
                node_s.append(time.perf_counter() - start)
            stream_s.append(subscriber.wait(event_id) - start)
            http.post(f"/api/v1/kill/agent/{AGENT}/resume",
                      json={"reason": "bench"}).raise_for_status()
        channel.close()
    ms = 1000.0
    ttl_ms = ttl * ms
    notes = [f"{KILLS} suspend/resume cycles of one agent on tabard dev (SQLite), measured "
             "from just before the REST call (audit write, lifecycle transition, commit, "
             "token and lease revocation included)",
             "baseline: the X509-SVID TTL, the time a stolen SVID stays usable without the "
             "kill switch; goal p99 ≤ 200 ms (ARCHITECTURE §8)"]
    figures = []
    for label, samples in (("stream subscriber", stream_s), ("node refuses SVID", node_s)):
        for pct in (50, 99):
            value = percentile(samples, pct) * ms
            figures.append(Figure(
                name=f"kill switch → {label}, p{pct}", value=value, unit="ms",
                baseline_name="X509-SVID TTL", baseline=ttl_ms,
                goal="p99 ≤ 200 ms" if pct == 99 else "report",
                higher_is_better=False,
                goal_ratio=_GOAL_S * ms / ttl_ms if pct == 99 else None,
                notes=notes if (label, pct) == ("stream subscriber", 50) else []))
    print(json.dumps({"stream_ms": [round(s * ms, 2) for s in stream_s[:5]],
                      "node_ms": [round(s * ms, 2) for s in node_s[:5]]}), file=sys.stderr)
    return figures + _replicas(ttl_ms)
