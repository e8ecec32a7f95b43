"""Gateway added latency and throughput (ARCHITECTURE.md §8: added p50 ≤ 1 ms, p99 ≤ 5 ms
over a direct call; throughput reported against a plain reverse proxy).

One upstream, one load generator, three paths, in one run:

* direct — ``wrk`` straight to the upstream, an nginx process (one worker) answering every
  path with a small JSON body (``return 200``: no disk, no application code, so the
  upstream costs the same few µs on every path and the difference is the proxy's);
* nginx — a second nginx process (one worker) as a plain reverse proxy to it, keep-alive to
  the upstream (``proxy_http_version 1.1``, an ``upstream`` block with ``keepalive``);
* gateway — tabard's gateway with full enforcement on an HTTP route (``/http/<route>/...``),
  built by ``tests/integration/gateway_world.py`` (real authority, authorization server,
  policy engine over the demo bundle, vault, leases and audit log on SQLite) and served by
  uvicorn on a real socket, as ``tabard gateway`` serves it (h11, asyncio loop): every
  request carries the agent's JWT-SVID in ``Tabard-Agent-Token`` and a delegated access
  token from tabard's AS in ``Authorization``; the gateway verifies both, takes a blended
  decision, injects the route's static credential from the vault (a lease record per
  request), scans the response with DLP and appends one audit record per request.

* gateway-process — ``tabard gateway`` in its own process, as deployed (server, node and
  gateway processes over one SQLite database; the agent's JWT-SVID from the node), the agent
  acting as principal.

The load generator is ``wrk`` (Debian package; installed with apt-get when missing, as is
nginx), a separate process, for all three. Latency: one connection, closed loop (no
queueing), p50/p99 per request as wrk measures them at the client. Throughput: requests/s at
a fixed concurrency. Each round runs the three paths one after another and each figure keeps
its median round, so load from elsewhere on the machine hits all alike.

The budgets are absolute (ms added over direct); each added-latency figure's goal ratio is
(direct + budget) / direct, so the verdict reads the same as "added ≤ budget".
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bench.harness import Figure

if TYPE_CHECKING:
    from tests.integration.gateway_world import GatewayWorld

__all__ = ["run"]

ROUNDS = 5
LATENCY_SECONDS = 3
THROUGHPUT_SECONDS = 3
CONNECTIONS = 16
P50_BUDGET_MS, P99_BUDGET_MS = 1.0, 5.0
ROUTE = "bench-http"
PATH = "/repos/tabard"
BODY = json.dumps({"name": "tabard", "stars": 42, "open_issues": 7,
                   "description": "identity for AI agents", "default_branch": "main"})

# wrk prints its own summary; this adds one JSON line with exact figures from its histogram
_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"mean_us": %f, "status_errors": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


def _ensure(binary: str, package: str) -> str:
    found = shutil.which(binary) or (f"/usr/sbin/{binary}"
                                     if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                   capture_output=True)
    found = shutil.which(binary) or f"/usr/sbin/{binary}"
    if not Path(found).exists():
        raise RuntimeError(f"{binary} is missing after apt-get install {package}")
    return found


def _free_port() -> int:
    from tests.integration.gateway_world import free_port
    return free_port()


_NGINX = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  {block}
}}
"""
_STATIC = """
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
"""
_PROXY = """
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }}
  }}
"""


@contextmanager
def _nginx(nginx: str, workdir: Path, block: str, port: int) -> Iterator[str]:
    workdir.mkdir(parents=True)
    conf = workdir / "nginx.conf"
    conf.write_text(_NGINX.format(dir=workdir, block=block))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(url + PATH, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"nginx did not start: {err[:500]}") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _wrk(wrk: str, script: Path, url: str, headers: dict[str, str], *, connections: int,
         seconds: int) -> dict[str, float]:
    args = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(script)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True,
                          timeout=seconds + 30)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no report: {done.stdout[-500:]} {done.stderr[-500:]}")
    report: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
    if report["status_errors"] or report["socket_errors"] or not report["requests"]:
        raise RuntimeError(f"wrk against {url} saw errors: {report}")
    report["rps"] = report["requests"] / (report["duration_us"] / 1e6)
    return report


def _fsync_ms(directory: Path, count: int = 40) -> float:
    """Median time of one fsync of a 4 KiB write in ``directory`` (what a durable commit
    waits for on that disk)."""
    probe = directory / "fsync.probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            start = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        probe.unlink()
    return statistics.median(times) * 1000


def _route_world(stack: ExitStack, data: Path, upstream: str, worlds_out: list[GatewayWorld]
                 ) -> tuple[str, dict[str, str]]:
    """A gateway world on ``data`` with the bench's HTTP route; its URL and headers."""
    from tests.fakes.gateway import CredentialSpec, RouteProtocol, route
    from tests.integration.gateway_world import build_world

    world = stack.enter_context(contextmanager(build_world)(data))
    world.routes.put(route(
        name=ROUTE, protocol=RouteProtocol.HTTP, upstream=upstream,
        credential=CredentialSpec(kind="static", secret="demo-upstream-key"),
        dlp_profile="default"))
    worlds_out.append(world)
    return (f"{world.url}/http/{ROUTE}{PATH}",
            world.headers("alice", route=ROUTE, protocol="http"))


_PROCESS_CATALOG = 'http_routes:\n  ping: {path: "/ping"}\n  repos: {path: "/repos/*"}\n'
_PROCESS_POLICY = ('@id("agents-may-ping")\n'
                   'permit (principal, action == Tabard::Action::"GET", '
                   'resource == Tabard::HttpRoute::"ping");\n'
                   '@id("agents-read-repos")\n'
                   'permit (principal, action == Tabard::Action::"GET", '
                   'resource == Tabard::HttpRoute::"repos");\n')


def _process_world(stack: ExitStack, base: Path, upstream: str) -> tuple[str, dict[str, str]]:
    """``tabard gateway`` as an operator runs it: its own process (uvloop, httptools) over a
    ``tabard server``'s SQLite database, the agent's instance SVID from a ``tabard node``;
    the bench's HTTP route with a static credential from the vault, DLP ``default``. The
    agent acts as principal (no user token)."""
    import base64

    from tests.support.kill_world import KillWorld

    world = stack.enter_context(KillWorld(base, gateways=1, agents=("bench-agent",),
                                          trust_domain="bench.example"))
    with world.http as http:
        for done in (
            http.post("/api/v1/secrets", json={
                "name": "bench-upstream-key",
                "value_base64": base64.b64encode(b"bench-" + os.urandom(16).hex().encode()
                                                 ).decode()}),
            http.put("/api/v1/policies", json={"files": {"catalog.yaml": _PROCESS_CATALOG,
                                                          "agents.cedar": _PROCESS_POLICY}}),
            http.post("/api/v1/routes", json={
                "name": ROUTE, "protocol": "http", "upstream": upstream,
                "credential": {"kind": "static", "secret": "bench-upstream-key"},
                "dlp_profile": "default"}),
        ):
            if done.status_code >= 300:
                raise RuntimeError(f"bench set-up refused: {done.status_code} {done.text[:300]}")
    url = f"{world.gws[0].url}/http/{ROUTE}{PATH}"
    headers = {"Tabard-Agent-Token": world.jwt["bench-agent"]}
    deadline = time.monotonic() + 20
    while httpx.get(url, headers=headers, timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway process does not serve the bench route")
        time.sleep(0.2)
    return url, headers


def run() -> list[Figure]:
    from tabard.logs import configure_logging

    nginx, wrk = _ensure("nginx", "nginx"), _ensure("wrk", "wrk")
    worlds: list[GatewayWorld] = []
    with (tempfile.TemporaryDirectory(prefix="tabard-bench-gw-") as tmp_name,
          tempfile.TemporaryDirectory(prefix="tabard-bench-gw-", dir="/dev/shm") as shm_name,
          ExitStack() as stack):
        tmp, shm = Path(tmp_name), Path(shm_name)
        # the gateway logs as `tabard gateway` does (JSON lines, level info), to a file
        configure_logging("info", file=tmp / "gateway.log")
        script = tmp / "report.lua"
        script.write_text(_REPORT)
        up_port, proxy_port = _free_port(), _free_port()
        direct_url = stack.enter_context(_nginx(
            nginx, tmp / "upstream", _STATIC.format(port=up_port, body=BODY), up_port))
        proxy_url = stack.enter_context(_nginx(
            nginx, tmp / "proxy", _PROXY.format(upstream=up_port, port=proxy_port),
            proxy_port))
        (tmp / "disk").mkdir()
        (shm / "mem").mkdir()
        targets = {"direct": (direct_url + PATH, {}),
                   "nginx": (proxy_url + PATH, {}),
                   "gateway": _route_world(stack, tmp / "disk", direct_url, worlds),
                   "gateway-tmpfs": _route_world(stack, shm / "mem", direct_url, worlds),
                   "gateway-process": _process_world(stack, tmp / "process", direct_url)}
        for name, (url, hdrs) in targets.items():
            answer = httpx.get(url, headers=hdrs, timeout=10)
            if answer.status_code != 200 or answer.json()["name"] != "tabard":
                raise RuntimeError(f"{name} answered {answer.status_code}: "
                                   f"{answer.text[:300]}")
        fsync = _fsync_ms(tmp / "disk")
        before = [_audit_count(w) for w in worlds]
        results = _measure(wrk, script, targets)
        audited = sum(_audit_count(w) - b for w, b in zip(worlds, before, strict=True))
    return _figures(results, audited, fsync)


def _audit_count(world: GatewayWorld) -> int:
    head = world.audit.head()
    return head.seq if head is not None else 0


def _measure(wrk: str, script: Path, targets: dict[str, tuple[str, dict[str, str]]]
             ) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {
        name: {"p50": [], "p99": [], "rps": [], "requests": []} for name in targets}
    for url, hdrs in targets.values():  # warm-up: connections, caches
        _wrk(wrk, script, url, hdrs, connections=CONNECTIONS, seconds=1)
    for _ in range(ROUNDS):
        for name, (url, hdrs) in targets.items():
            lat = _wrk(wrk, script, url, hdrs, connections=1, seconds=LATENCY_SECONDS)
            out[name]["p50"].append(lat["p50_us"] / 1000)
            out[name]["p99"].append(lat["p99_us"] / 1000)
            out[name]["requests"].append(lat["requests"])
        for name, (url, hdrs) in targets.items():
            tput = _wrk(wrk, script, url, hdrs, connections=CONNECTIONS,
                        seconds=THROUGHPUT_SECONDS)
            out[name]["rps"].append(tput["rps"])
            out[name]["requests"].append(tput["requests"])
    print(json.dumps({n: {k: [round(v, 3) for v in vs] for k, vs in r.items()}
                      for n, r in out.items()}), file=sys.stderr)
    return out


def _figures(results: dict[str, dict[str, list[float]]], audited: int, fsync_ms: float
             ) -> list[Figure]:
    med = {n: {k: statistics.median(v) for k, v in r.items() if k != "requests"}
           for n, r in results.items()}
    sent = {n: int(sum(r["requests"])) for n, r in results.items()}
    d50, d99 = med["direct"]["p50"], med["direct"]["p99"]

    def added(name: str) -> str:
        return (f"{name} p50 {med[name]['p50'] - d50:+.3f} ms, p99 "
                f"{med[name]['p99'] - d99:+.3f} ms")

    notes = [
        f"{ROUNDS} alternating rounds of wrk (1 thread) per path: {LATENCY_SECONDS} s at 1 "
        f"connection (latency, closed loop) then {THROUGHPUT_SECONDS} s at {CONNECTIONS} "
        "connections (throughput); each figure is the median round; loopback, 2 shared cores",
        "upstream: nginx, 1 worker, `return 200` with a "
        f"{len(BODY)}-byte JSON body; nginx proxy: 1 worker, keep-alive upstream",
        "gateway: tests/integration/gateway_world.py build_world (uvicorn, httptools on uvloop, "
        "as `tabard gateway` serves it, logging configured as `tabard gateway` does), HTTP "
        "route; "
        "per request: agent JWT-SVID + delegated AS token verified, blended Cedar decision, "
        "vault static credential injected (lease record), DLP `default` on the response, "
        "audit intent before forwarding and the final record after, both durable "
        "(SQLite WAL, synchronous=FULL); the answer waits for the intent's commit, the "
        "outcome's follows it",
        "`tabard gateway` process: its own process over a `tabard server`'s SQLite database "
        "(tests/support/kill_world.py: server, node, gateway), the agent's JWT-SVID from the "
        "node's Workload API, agent as principal (no user token), the same route, credential "
        "and DLP; routes, secrets, leases, audit and signals in SQL as deployed",
        f"one fsync on the bench's disk (median, measured in this run): {fsync_ms:.2f} ms; "
        "`gateway-tmpfs` is the same gateway with its database on /dev/shm, where fsync is "
        "free: the gateway's own cost without the disk's",
        "added latency over direct: " + "; ".join(
            added(n) for n in ("nginx", "gateway", "gateway-tmpfs", "gateway-process")),
        "throughput at {CONNECTIONS} connections: ".replace("{CONNECTIONS}", str(CONNECTIONS))
        + ", ".join(f"{n} {med[n]['rps']:,.0f}/s" for n in med),
        "requests sent: " + ", ".join(f"{n} {c:,}" for n, c in sent.items())
        + f"; audit records appended by the gateways meanwhile: {audited:,}",
    ]

    def latency(name: str, pct: int, subject: str, goal: bool) -> Figure:
        base = d50 if pct == 50 else d99
        budget = P50_BUDGET_MS if pct == 50 else P99_BUDGET_MS
        return Figure(f"{subject} latency, 1 connection (p{pct})", med[name][f"p{pct}"], "ms",
                      "direct to the upstream", base,
                      f"added ≤ {budget:g} ms" if goal else "reported",
                      higher_is_better=False,
                      goal_ratio=(base + budget) / base if goal else None)

    figures = [
        latency("gateway", 50, "gateway", True),
        latency("gateway", 99, "gateway", True),
        latency("gateway-tmpfs", 50, "gateway, database on tmpfs", True),
        latency("gateway-tmpfs", 99, "gateway, database on tmpfs", True),
        latency("gateway-process", 50, "`tabard gateway` process, agent as principal", True),
        latency("gateway-process", 99, "`tabard gateway` process, agent as principal", True),
        latency("nginx", 50, "nginx proxy", False),
        latency("nginx", 99, "nginx proxy", False),
        Figure(f"gateway throughput, {CONNECTIONS} connections", med["gateway"]["rps"],
               "ops/s", "nginx reverse proxy", med["nginx"]["rps"], "reported"),
        Figure(f"gateway throughput, database on tmpfs, {CONNECTIONS} connections",
               med["gateway-tmpfs"]["rps"], "ops/s", "nginx reverse proxy",
               med["nginx"]["rps"], "reported"),
        Figure(f"`tabard gateway` process throughput, {CONNECTIONS} connections",
               med["gateway-process"]["rps"], "ops/s", "nginx reverse proxy",
               med["nginx"]["rps"], "reported"),
        Figure(f"nginx proxy throughput, {CONNECTIONS} connections", med["nginx"]["rps"],
               "ops/s", "direct to the upstream", med["direct"]["rps"], "reported"),
    ]
    figures[0].notes = notes
    return figures
