"""Workload API throughput through the py-spiffe client, against a real ``tabard dev``.

The bench starts ``tabard dev`` in a temp dir, gives its own uid an instance-template entry,
and calls the node's Workload API as an agent process would: ``WorkloadApiClient`` from the
``spiffe`` package over the Unix socket. Each figure sits beside a baseline measured in the
same run, in alternating rounds (``compare_rates``):

* FetchX509SVID (py-spiffe) and FetchX509SVID with a bare gRPC stub (no client-side
  certificate parsing, so the node's own cost shows) — beside an in-process
  ``Authority.mint_x509_svid`` with a caller-supplied key;
* FetchJWTSVID with one audience (served from the node's cache) and with a new audience per
  call (minted by the server over the node API) — beside an in-process
  ``Authority.mint_jwt_svid``;
* two client processes fetching X509-SVIDs at once, a fixed number of calls each — beside one
  such process alone.

No budget in ARCHITECTURE.md §8 covers these, so the goals read "report".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from spiffe import WorkloadApiClient
from spiffe._proto import workload_pb2 as pb
from spiffe._proto import workload_pb2_grpc as pb_grpc
from tests.support.platform import DevPlatform

from bench.harness import Figure, compare_rates
from tabard.app import build_control_plane
from tabard.authority import Authority
from tabard.config import Settings
from tabard.spiffe import SpiffeId

__all__ = ["CONCURRENT_CALLS", "TRUST_DOMAIN", "CallCost", "call_cost", "client_process",
           "drive_client_processes", "process_cpu_seconds", "run"]

TRUST_DOMAIN = "bench.example"
CONCURRENT_CALLS = 300
"""FetchX509SVID calls made by each client process in the concurrency figure."""
WORKLOAD_READY_TIMEOUT = 60.0
ROUNDS = 5
SECONDS = 0.3
_HEADER = (("workload.spiffe.io", "true"),)
_ROOT = Path(__file__).resolve().parent.parent


def _create_entry(platform: DevPlatform) -> None:
    node_id = platform.ready["node_spiffe_id"]
    with platform.http() as http:
        response = http.post("/api/v1/entries", json={
            "spiffe_id": f"spiffe://{TRUST_DOMAIN}/agent/bench/instance/{{instance}}",
            "parent_id": node_id,
            "selectors": [f"unix:uid:{os.getuid()}"],
        })
    if response.status_code != 201:
        raise RuntimeError(f"entry create answered {response.status_code}: "
                           f"{response.text[:300]}")


def _first_svid(client: WorkloadApiClient, timeout: float) -> None:
    """Poll until the node serves this process (it syncs entries every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.fetch_x509_svid(timeout=10)
            return
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _bare_grpc_fetch(socket: str) -> tuple[grpc.Channel, Callable[[], object]]:
    """FetchX509SVID through py-spiffe's generated stub, without its certificate parsing:
    first message, then cancel, as ``fetch_x509_svid`` does."""
    channel = grpc.insecure_channel(socket)
    stub = pb_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]

    def fetch() -> object:
        call = stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=_HEADER)
        try:
            return next(call)
        finally:
            call.cancel()

    return channel, fetch


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CallCost:
    """Milliseconds per call over a fixed loop: wall, client CPU, server (tabard dev) CPU."""

    wall_ms: float
    client_ms: float
    server_ms: float

    def note(self, per: str = "call") -> str:
        return (f"{self.wall_ms:.2f} ms wall per {per}: {self.client_ms:.2f} ms CPU in the "
                f"client(s), {self.server_ms:.2f} ms CPU in the tabard dev process")


def call_cost(fn: Callable[[], object], calls: int, server_pid: int) -> CallCost:
    """Run ``fn`` ``calls`` times and split its cost between client and server CPU."""
    server, wall, cpu = process_cpu_seconds(server_pid), time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return CallCost((time.perf_counter() - wall) * 1000 / calls,
                    (time.process_time() - cpu) * 1000 / calls,
                    (process_cpu_seconds(server_pid) - server) * 1000 / calls)


def client_process() -> None:
    """One concurrent client (run as a child): warm up, say ready, wait for go, fetch N times.

    argv: socket URL, number of calls. Prints ``ready`` then one JSON line.
    """
    socket, calls = sys.argv[1], int(sys.argv[2])
    client = WorkloadApiClient(socket_path=socket)
    _first_svid(client, WORKLOAD_READY_TIMEOUT)  # a new process: its own instance, minted
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit(2)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        client.fetch_x509_svid()
    print(json.dumps({"calls": calls, "seconds": time.perf_counter() - start,
                      "cpu": time.process_time() - cpu}), flush=True)
    client.close()


def drive_client_processes(children: list[subprocess.Popen[str]], server_pid: int,
                           total: int, *, setup: Callable[[subprocess.Popen[str]], None]
                           | None = None) -> tuple[float, CallCost]:
    """Run client processes that print ``ready``, wait for ``go`` on stdin, make their calls
    and print JSON with their CPU seconds: calls per second together, and the cost per call
    (client CPU summed over the processes). Kills what is left on the way out."""
    try:
        for child in children:
            if setup is not None:
                setup(child)
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a client process did not get ready")
        server, start = process_cpu_seconds(server_pid), time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        client_cpu = 0.0
        for child in children:
            out, _ = child.communicate(timeout=120)
            if child.returncode != 0:
                raise RuntimeError(f"a client process exited with {child.returncode}")
            client_cpu += float(json.loads(out)["cpu"])
        elapsed = time.perf_counter() - start
        server = process_cpu_seconds(server_pid) - server
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return total / elapsed, CallCost(elapsed * 1000 / total, client_cpu * 1000 / total,
                                     server * 1000 / total)


def _processes_rate(socket: str, processes: int, calls: int, server_pid: int
                    ) -> tuple[float, CallCost]:
    """SVIDs per second that ``processes`` client processes get together, ``calls`` each."""
    code = "from bench.workload import client_process; client_process()"
    children = [
        subprocess.Popen([sys.executable, "-c", code, socket, str(calls)], cwd=_ROOT,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    return drive_client_processes(children, server_pid, processes * calls)


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="tabard-bench-") as tmp:
        root = Path(tmp)
        plane = build_control_plane(Settings(data_dir=root / "inproc", trust_domain=TRUST_DOMAIN))
        try:
            return _measure(root, plane.authority)
        finally:
            plane.close()


def _measure(root: Path, authority: Authority) -> list[Figure]:
    workload = SpiffeId.parse(f"spiffe://{TRUST_DOMAIN}/agent/bench/instance/1")
    caller_key = ec.generate_private_key(ec.SECP256R1()).public_key()

    def mint_x509() -> object:
        return authority.mint_x509_svid(workload, public_key=caller_key)

    def mint_jwt() -> object:
        return authority.mint_jwt_svid(workload, ["bench"])

    with DevPlatform(root / "dev", trust_domain=TRUST_DOMAIN) as platform:
        socket = str(platform.ready["workload_socket"])
        assert platform.process is not None
        pid = platform.process.pid
        _create_entry(platform)
        client = WorkloadApiClient(socket_path=socket)
        channel, bare_fetch = _bare_grpc_fetch(socket)
        counter = iter(range(1_000_000))

        def jwt_cached() -> object:
            return client.fetch_jwt_svid({"bench"})

        def jwt_new() -> object:
            return client.fetch_jwt_svid({f"bench-{next(counter)}"})

        try:
            _first_svid(client, WORKLOAD_READY_TIMEOUT)
            x509, x509_mint = compare_rates(client.fetch_x509_svid, mint_x509,
                                            rounds=ROUNDS, seconds=SECONDS)
            x509_cost = call_cost(client.fetch_x509_svid, 100, pid)
            bare, x509_mint2 = compare_rates(bare_fetch, mint_x509, rounds=ROUNDS,
                                             seconds=SECONDS)
            bare_cost = call_cost(bare_fetch, 100, pid)
            cached, jwt_mint = compare_rates(jwt_cached, mint_jwt, rounds=ROUNDS,
                                             seconds=SECONDS)
            cached_cost = call_cost(jwt_cached, 100, pid)
            new, jwt_mint2 = compare_rates(jwt_new, mint_jwt, rounds=ROUNDS, seconds=SECONDS)
            new_cost = call_cost(jwt_new, 50, pid)
            audiences = next(counter)
        finally:
            channel.close()
            client.close()
        one, one_cost = _processes_rate(socket, 1, CONCURRENT_CALLS, pid)
        two, two_cost = _processes_rate(socket, 2, CONCURRENT_CALLS, pid)

    return [
        Figure("Workload API FetchX509SVID (py-spiffe)", x509, "ops/s",
               "in-process X509-SVID mint (caller key)", x509_mint, "report",
               notes=[x509_cost.note() + " (py-spiffe parses the DER chain with pyasn1)"]),
        Figure("Workload API FetchX509SVID (bare gRPC stub)", bare, "ops/s",
               "in-process X509-SVID mint (caller key)", x509_mint2, "report",
               notes=[bare_cost.note() + " (no certificate parsing in the client)"]),
        Figure("Workload API FetchJWTSVID, same audience (node cache)", cached, "ops/s",
               "in-process JWT-SVID mint", jwt_mint, "report", notes=[cached_cost.note()]),
        Figure("Workload API FetchJWTSVID, new audience per call (mints)", new, "ops/s",
               "in-process JWT-SVID mint", jwt_mint2, "report",
               notes=[new_cost.note() + " (node and server share that process)",
                      f"{audiences} distinct audiences, each a node API call to the server"]),
        Figure(f"FetchX509SVID, 2 client processes together ({CONCURRENT_CALLS} calls each)",
               two, "ops/s", f"1 client process ({CONCURRENT_CALLS} calls)", one, "report",
               notes=[f"{os.cpu_count()} cores shared by the clients and tabard dev; "
                      f"2 processes: {two_cost.note('SVID')}; 1 process: "
                      f"{one_cost.note('SVID')}"]),
    ]
