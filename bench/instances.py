"""Instance registration: how many new processes per second the server can give an ID.

Two places, each beside a baseline from the same run:

* in-process, at the registry's use case — ``InstanceService.register(node, report)`` over
  the SQLite store the composition root builds (``build_control_plane``) — beside a bare
  ``sqlite3`` INSERT of the same row shape into the same table of the same database, one
  committed transaction per row (the floor any registration pays);
* end to end, ``POST /node/v1/instances`` over HTTPS with a node SVID to a running
  ``tabard dev``, from client processes that each attested as a node with a join token
  (as ``tabard node`` does) and own an instance-template entry — one client and several at
  once, a fixed number of registrations each — beside the in-process rate.

Every registration is a new process (fresh pid and start time), so each one inserts a row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

from tests.support.platform import DevPlatform

from bench.harness import Figure, compare_rates
from bench.workload import CallCost, drive_client_processes
from tabard.app import build_control_plane
from tabard.attestation.unix import CLOCK_TICKS, ProcessEvidence
from tabard.config import Settings
from tabard.node import HttpNodeServerClient, InstanceRequest, discover
from tabard.node.agent import csr_pem, new_key
from tabard.registry import EntrySpec, InstanceReport, NodePrincipal, parse_selectors

__all__ = ["CLIENTS", "REGISTRATIONS_PER_CLIENT", "TRUST_DOMAIN", "client_process", "run"]

TRUST_DOMAIN = "bench.example"
CLIENTS = 4
"""Concurrent client processes (each its own node) in the several-clients figure."""
REGISTRATIONS_PER_CLIENT = 150
ROUNDS = 5
SECONDS = 0.3
_ROOT = Path(__file__).resolve().parent.parent
_EXE = "/usr/bin/bench-agent"
_EXE_SHA256 = hashlib.sha256(b"bench-agent").hexdigest()
_UID = 1000


def _selectors() -> list[str]:
    return [f"unix:uid:{_UID}", f"unix:gid:{_UID}", f"unix:path:{_EXE}",
            f"unix:sha256:{_EXE_SHA256}"]


def _template(name: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/agent/{name}/instance/{{instance}}"


def _processes() -> Iterator[tuple[int, float]]:
    """A new process each time: (pid, start time), never repeated within a run."""
    for n in count(1):
        yield 1 + n % 4_000_000, 1000.0 + n / 100


# --- in-process ------------------------------------------------------------------------------


def _sql_datetime(value: datetime) -> str:
    """The text SQLAlchemy stores a UTC datetime as on SQLite."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _bare_insert(path: Path, node_id: str, entry_id: str, spiffe_prefix: str,
                 processes: Iterator[tuple[int, float]]) -> tuple[sqlite3.Connection,
                                                                  Callable[[], None]]:
    """One row like a registration writes, committed on its own, with the server's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                   "busy_timeout=10000"):
        conn.execute(f"PRAGMA {pragma}")
    selectors = json.dumps(_selectors())
    sql = ("INSERT INTO agent_instances (id, node_id, entry_id, spiffe_id, agent, pid, "
           "start_time, uid, gid, exe_path, exe_sha256, selectors, parent_instance_id, "
           "first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    ids = count(1)

    def insert() -> None:
        pid, start = next(processes)
        instance_id = f"bench{next(ids):021d}"
        now = _sql_datetime(datetime.now(UTC))
        conn.execute("BEGIN")
        conn.execute(sql, (instance_id, node_id, entry_id, spiffe_prefix + instance_id,
                           "bench", pid, start, _UID, _UID, _EXE, _EXE_SHA256, selectors,
                           None, now, now))
        conn.execute("COMMIT")

    return conn, insert


def _in_process(root: Path) -> tuple[float, float]:
    """Rates of ``InstanceService.register`` and of the bare insert, alternating rounds."""
    settings = Settings(data_dir=root / "inproc", trust_domain=TRUST_DOMAIN)
    plane = build_control_plane(settings)
    try:
        registry = plane.registry
        token = registry.join_tokens.generate().token
        attested = registry.nodes.attest("join_token", {"join_token": token},
                                         new_key().public_key())
        node = NodePrincipal(attested.node.id, attested.node.spiffe_id)
        entry = registry.entries.create(EntrySpec(
            spiffe_id=_template("bench"), parent_id=str(node.spiffe_id),
            selectors=[f"unix:uid:{_UID}", f"unix:path:{_EXE}"]))
        selectors = parse_selectors(_selectors())
        processes = _processes()

        def register() -> None:
            pid, start = next(processes)
            registration = registry.instances.register(node, InstanceReport(
                entry_id=entry.id, pid=pid, start_time=start, uid=_UID, gid=_UID,
                exe_path=_EXE, exe_sha256=_EXE_SHA256, selectors=selectors))
            if not registration.created:
                raise RuntimeError("a new process was given an existing instance")

        db_path = Path(settings.effective_database_url.removeprefix("sqlite:///"))
        conn, insert = _bare_insert(db_path, node.node_id, entry.id,
                                    _template("bench").removesuffix("{instance}"), processes)
        try:
            return compare_rates(register, insert, rounds=ROUNDS, seconds=SECONDS)
        finally:
            conn.close()
    finally:
        plane.close()


# --- end to end over the node API ----------------------------------------------------------


async def _client(setup: dict[str, str], calls: int) -> None:
    discovery = await discover(setup["server_url"])
    client = HttpNodeServerClient(discovery)
    key = new_key()
    credentials = await client.attest(setup["join_token"], csr_pem(key))
    client.use_credentials(credentials.chain, key, credentials.bundle)
    entry_id = _create_entry(setup, str(credentials.spiffe_id))

    def request(n: int) -> InstanceRequest:
        evidence = ProcessEvidence(pid=100_000 + n, uid=_UID, gid=_UID, ppid=1,
                                   start_ticks=int(CLOCK_TICKS) * (1000 + n), exe_path=_EXE,
                                   exe_sha256=_EXE_SHA256, user=None, group=None)
        return InstanceRequest(entry_id=entry_id, evidence=evidence, parent_instance_id=None)

    if not (await client.register_instance(request(0))).created:  # warm: TLS, pool, caches
        raise RuntimeError("the warm-up registration was not new")
    print("ready", flush=True)
    if await asyncio.to_thread(sys.stdin.readline) != "go\n":
        raise SystemExit(2)
    start, cpu = time.perf_counter(), time.process_time()
    for n in range(1, calls + 1):
        if not (await client.register_instance(request(n))).created:
            raise RuntimeError("a new process was given an existing instance")
    print(json.dumps({"calls": calls, "seconds": time.perf_counter() - start,
                      "cpu": time.process_time() - cpu}), flush=True)


def _create_entry(setup: dict[str, str], node_spiffe_id: str) -> str:
    import httpx

    response = httpx.post(
        f"{setup['server_url']}/api/v1/entries", timeout=30,
        headers={"Authorization": f"Bearer {setup['admin_token']}"},
        json={"spiffe_id": _template(f"bench-{os.getpid()}"), "parent_id": node_spiffe_id,
              "selectors": [f"unix:uid:{_UID}", f"unix:path:{_EXE}"]},
    )
    if response.status_code != 201:
        raise RuntimeError(f"entry create answered {response.status_code}")
    return str(response.json()["id"])


def client_process() -> None:
    """One node-API client (run as a child): attest with the join token read from stdin,
    create its own template entry, register one process, say ready, then ``calls`` more on
    ``go``. argv: number of calls. Prints ``ready`` then one JSON line."""
    setup = json.loads(sys.stdin.readline())
    asyncio.run(_client(setup, int(sys.argv[1])))


def _join_token(platform: DevPlatform) -> str:
    with platform.http() as http:
        response = http.post("/api/v1/join-tokens", json={"ttl": "10m"})
    if response.status_code != 201:
        raise RuntimeError(f"join token answered {response.status_code}")
    return str(response.json()["token"])


def _over_https(platform: DevPlatform, clients: int, calls: int) -> tuple[float, CallCost]:
    """Registrations per second that ``clients`` node processes get together, and the cost
    of one registration (client CPU summed over the clients)."""
    assert platform.process is not None
    code = "from bench.instances import client_process; client_process()"
    children = [
        subprocess.Popen([sys.executable, "-c", code, str(calls)], cwd=_ROOT,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]

    def hand_credentials(child: subprocess.Popen[str]) -> None:
        assert child.stdin is not None
        child.stdin.write(json.dumps({
            "server_url": platform.url, "admin_token": platform.admin_token,
            "join_token": _join_token(platform)}) + "\n")
        child.stdin.flush()

    return drive_client_processes(children, platform.process.pid, clients * calls,
                                  setup=hand_credentials)


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="tabard-bench-") as tmp:
        root = Path(tmp)
        register, bare = _in_process(root)
        with DevPlatform(root / "dev", trust_domain=TRUST_DOMAIN) as platform:
            one, one_cost = _over_https(platform, 1, REGISTRATIONS_PER_CLIENT)
            several, several_cost = _over_https(platform, CLIENTS, REGISTRATIONS_PER_CLIENT)
    return [
        Figure("Instance registration, in-process (InstanceService.register, SQLite)",
               register, "ops/s", "bare sqlite3 INSERT + COMMIT, same row", bare, "report"),
        Figure(f"Instance registration over HTTPS node API, 1 client "
               f"({REGISTRATIONS_PER_CLIENT} calls)", one, "ops/s",
               "in-process InstanceService.register", register, "report",
               notes=[one_cost.note("registration")]),
        Figure(f"Instance registration over HTTPS node API, {CLIENTS} concurrent clients "
               f"({REGISTRATIONS_PER_CLIENT} calls each)", several, "ops/s",
               "in-process InstanceService.register", register, "report",
               notes=[several_cost.note("registration") + f"; {os.cpu_count()} cores shared "
                      "by the clients and tabard dev"]),
    ]
