"""The kill switch across processes, the way an operator runs tabard: one ``tabard server``,
several ``tabard gateway`` processes over the same database, one ``tabard node``, an HTTP
upstream behind a gateway route, and agents whose instances are this very process.

Used by ``tests/integration/test_kill_switch_replicas.py`` and ``bench/killswitch.py``.
Each agent acts as principal (``agent_as_principal``: no user token), so a gateway call is one
``GET <gateway>/http/ping/ping`` with the agent's JWT-SVID in ``Tabard-Agent-Token``.
:meth:`KillWorld.cycle` suspends one agent through the REST API and measures, from the
moment the call returns, when each gateway first denies it and when the node drops its SVID
from the Workload API stream.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
from spiffe._proto import workload_pb2 as pb
from spiffe._proto import workload_pb2_grpc as pb_grpc

from tests.support.processes import (
    NodeProcess,
    ServerProcess,
    _Daemon,
    _daemon_env,
    free_port,
    wait_until,
)

__all__ = ["AUDIENCE", "Cycle", "GatewayProcess", "KillWorld"]

AUDIENCE = "tabard-gateways"
_HEADER = (("workload.spiffe.io", "true"),)
CATALOG = 'http_routes:\n  ping: {path: "/ping"}\n'
POLICY = ('@id("agents-may-ping")\n'
          'permit (principal, action == Tabard::Action::"GET", '
          'resource == Tabard::HttpRoute::"ping");\n')


class GatewayProcess(_Daemon):
    """``tabard gateway`` over the server's data dir (and database), on a fixed port."""

    _READY = re.compile(r"tabard gateway listening on (\S+)")

    def __init__(self, data_dir: Path, name: str, env: Mapping[str, str]) -> None:
        super().__init__(data_dir.parent / f"{name}.log")
        self.data_dir = data_dir
        self.env = dict(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        self._spawn(["gateway", "--data-dir", str(self.data_dir), "--port", str(self.port)],
                    _daemon_env(self.env))
        self._wait_for(self._READY, "tabard gateway")
        return self


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"pong"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Cycle:
    """One suspension: seconds from the REST call's return to each gateway's first denial
    and to the node dropping the SVID."""

    event_id: int
    gateways: list[float]
    node: float


@dataclass
class KillWorld:
    base: Path
    gateways: int = 3
    agents: tuple[str, ...] = ("victim", "bystander-a", "bystander-b")
    trust_domain: str = "kill.example"
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {"TABARD_GATEWAY__AUDIENCE": AUDIENCE,
                    "TABARD_AUTHORITY__JWT_SVID_TTL": "1h", "TABARD_LOG_LEVEL": "warning",
                    **self.extra_env}
        self.server = ServerProcess(self.base / "server", trust_domain=self.trust_domain,
                                    extra_env=self.env)
        self.gws = [GatewayProcess(self.base / "server", f"gateway-{i}",
                                   {"TABARD_TRUST_DOMAIN": self.trust_domain, **self.env})
                    for i in range(self.gateways)]
        self.node: NodeProcess | None = None
        self.instance: dict[str, str] = {}
        self.jwt: dict[str, str] = {}
        self._upstream: ThreadingHTTPServer | None = None
        self._channel: grpc.Channel | None = None

    # --- set-up ------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30, headers={
            "authorization": f"Bearer {self.server.admin_token}"})

    def __enter__(self) -> KillWorld:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self._upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
        threading.Thread(target=self._upstream.serve_forever, daemon=True).start()
        upstream = f"http://127.0.0.1:{self._upstream.server_address[1]}"
        self.server.start()
        with self.http as http:
            for done in (
                http.post("/api/v1/users", json={"user_name": "carol"}),
                http.put("/api/v1/policies", json={"files": {"catalog.yaml": CATALOG,
                                                              "agents.cedar": POLICY}}),
                http.post("/api/v1/routes", json={"name": "ping", "protocol": "http",
                                                  "upstream": upstream,
                                                  "credential": {"kind": "none"}}),
            ):
                _ok(done)
        token = self.server.cli("token", "generate", "--json")
        assert token.returncode == 0, token.stderr
        self.node = NodeProcess(self.server.url, self.base / "w.sock", self.base / "node",
                                join_token=json.loads(token.stdout)["token"],
                                extra_env={"TABARD_LOG_LEVEL": "warning"}).start()
        with self.http as http:
            for name in self.agents:
                _ok(http.post("/api/v1/agents", json={
                    "name": name, "owner": "carol", "purpose": "kill-switch replicas",
                    "model": {"provider": "a", "name": "b", "version": "1"},
                    "hosting": "local", "tier": "dev", "tools": ["t"],
                    "image_digest": "sha256:" + "ab" * 32,
                    "selectors": [f"unix:uid:{os.getuid()}",
                                  f"unix:path:{os.path.realpath(sys.executable)}"],
                    "policy_bindings": {"dev": "p"}, "delegation": "agent_as_principal",
                    "parent_id": self.node.node_spiffe_id, "activate": True}))
        for gw in self.gws:  # spawn all, then wait: they start in parallel
            gw._spawn(["gateway", "--data-dir", str(gw.data_dir), "--port", str(gw.port)],
                      _daemon_env(gw.env))
        for gw in self.gws:
            gw._wait_for(gw._READY, "tabard gateway")
        self._channel = grpc.insecure_channel(self.node.workload_socket)
        call, ids = self.open_stream(set(self.agents))
        call.cancel()
        self.instance = ids
        stub = self.stub
        for name, spiffe_id in ids.items():
            answer = stub.FetchJWTSVID(pb.JWTSVIDRequest(audience=[AUDIENCE],
                                                         spiffe_id=spiffe_id),
                                       metadata=_HEADER, timeout=10)
            self.jwt[name] = answer.svids[0].svid
        for gw in self.gws:
            for name in self.agents:
                wait_until(lambda g=gw, n=name: self.call(g, n) == 200, timeout=10,
                           interval=0.1, message=f"{name} served by {gw.url}")

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        for daemon in [*self.gws, self.node, self.server]:
            if daemon is not None:
                daemon.stop()
        if self._upstream is not None:
            self._upstream.shutdown()
            self._upstream.server_close()

    # --- probes ------------------------------------------------------------------------------

    @property
    def stub(self) -> pb_grpc.SpiffeWorkloadAPIStub:
        assert self._channel is not None
        return pb_grpc.SpiffeWorkloadAPIStub(self._channel)  # type: ignore[no-untyped-call]

    def agent_of(self, spiffe_id: str) -> str:
        return spiffe_id.split("/agent/", 1)[1].split("/", 1)[0]

    def open_stream(self, want: set[str], timeout: float = 30.0
                    ) -> tuple[Any, dict[str, str]]:
        """A FetchX509SVID stream whose first message holds SVIDs of exactly the agents in
        ``want`` (retrying while the node learns of them)."""
        deadline = time.monotonic() + timeout
        got: set[str] = set()
        while True:
            call = self.stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=_HEADER)
            try:
                first = next(call)
                ids = {self.agent_of(s.spiffe_id): s.spiffe_id for s in first.svids}
                got = set(ids)
                if got == want:
                    return call, ids
            except grpc.RpcError:
                pass
            call.cancel()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the node serves {sorted(got)}, not {sorted(want)}")
            time.sleep(0.02)

    def call(self, gateway: GatewayProcess, agent: str, client: httpx.Client | None = None
             ) -> int:
        """One call through ``gateway`` as ``agent``: the status (0: gateway down)."""
        try:
            if client is not None:
                return client.get(f"{gateway.url}/http/ping/ping",
                                  headers={"Tabard-Agent-Token": self.jwt[agent]}).status_code
            return httpx.get(f"{gateway.url}/http/ping/ping", timeout=10,
                             headers={"Tabard-Agent-Token": self.jwt[agent]}).status_code
        except httpx.TransportError:
            return 0

    # --- one suspension ----------------------------------------------------------------------

    def cycle(self, agent: str, http: httpx.Client, *, timeout: float = 10.0) -> Cycle:
        """Suspend ``agent`` and measure; leaves it suspended."""
        others = set(self.agents) - {agent}
        call, _ = self.open_stream(set(self.agents))
        go = threading.Event()
        t0 = [0.0]
        denied: list[float | None] = [None] * len(self.gws)

        def probe(i: int) -> None:
            with httpx.Client(timeout=10) as client:
                go.wait()
                deadline = time.perf_counter() + timeout
                while time.perf_counter() < deadline:
                    status = self.call(self.gws[i], agent, client)
                    if status == 403:
                        denied[i] = time.perf_counter() - t0[0]
                        return
                    assert status == 200, f"gateway {i} answered {status}"

        threads = [threading.Thread(target=probe, args=(i,), daemon=True)
                   for i in range(len(self.gws))]
        for t in threads:
            t.start()
        answer = http.post(f"/api/v1/kill/agent/{agent}/suspend", json={"reason": "cycle"})
        t0[0] = time.perf_counter()
        go.set()
        _ok(answer)
        node = timeout
        try:
            for message in call:
                held = {self.agent_of(s.spiffe_id) for s in message.svids}
                if agent not in held:
                    assert held == others, held
                    node = time.perf_counter() - t0[0]
                    break
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.PERMISSION_DENIED:
                raise
            node = time.perf_counter() - t0[0]
        finally:
            call.cancel()
        for t in threads:
            t.join(timeout + 1)
        missing = [self.gws[i].url for i, d in enumerate(denied) if d is None]
        assert not missing, f"{agent} still served by {missing}"
        return Cycle(int(answer.json()["event"]["id"]), [d for d in denied if d is not None],
                     node)

    def resume(self, agent: str, http: httpx.Client, *, timeout: float = 10.0) -> None:
        """Resume ``agent`` and wait until every gateway serves it and the node too."""
        _ok(http.post(f"/api/v1/kill/agent/{agent}/resume", json={"reason": "cycle"}))
        with httpx.Client(timeout=10) as client:
            for gw in self.gws:
                wait_until(lambda g=gw: self.call(g, agent, client) == 200, timeout=timeout,
                           interval=0.01, message=f"{agent} served again by {gw.url}")
        self.open_stream(set(self.agents), timeout)[0].cancel()


def _ok(answer: httpx.Response) -> dict[str, Any]:
    if answer.status_code >= 300:
        raise AssertionError(f"{answer.request.method} {answer.request.url} answered "
                             f"{answer.status_code}: {answer.text[:500]}")
    value: dict[str, Any] = answer.json() if answer.content else {}
    return value


def iter_cycles(world: KillWorld, agent: str, count: int) -> Iterator[Cycle]:
    with world.http as http:
        for _ in range(count):
            cycle = world.cycle(agent, http)
            world.resume(agent, http)
            yield cycle
