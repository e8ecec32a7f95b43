"""The scene of ``tabard dev --demo`` (issue 6 "The demo"), seeded idempotently.

Trust domain ``demo.example``; people ``alice`` (group ``engineering``), ``bob`` (group
``security``, role ``approver``) and the owner ``carol``; the agent ``assistant`` (hybrid
delegation, the four demo tools) whose instances are the current user's processes (its
entry's selector is ``unix:uid:<uid>``); the policy bundle of ``examples/demo/policies``; the
vault secret ``demo-tools-token`` (a random value made once); the demo MCP server
(:mod:`tabard.demo.mcp_server`) as a subprocess that accepts only that token; and the route
``demo-tools`` to it, which injects the token. Every step checks what exists first, so a
restart on the same data directory reuses it all.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tabard.app import ControlPlane, write_ready_file
from tabard.audit import AuditEvent, AuditKind, What
from tabard.directory import MemberRef
from tabard.policy import read_bundle
from tabard.registry import (
    AgentNotFoundError,
    AgentSpec,
    AgentState,
    CredentialSpec,
    ModelRef,
    Route,
    RouteNotFoundError,
    RouteProtocol,
)
from tabard.vault import SecretNotFoundError

__all__ = ["DEMO_TRUST_DOMAIN", "DemoScene", "policies_dir", "seed", "start_demo"]

DEMO_TRUST_DOMAIN = "demo.example"
ROUTE = "demo-tools"
SECRET = "demo-tools-token"
AGENT = "assistant"
TOOLS = ("jira.create_issue", "github.read_repo", "scanner.run_scan", "deploy.trigger")
ACTOR = "tabard-demo"
_DIGEST = "sha256:" + "0" * 63 + "1"
_PEOPLE = {"alice": ("Alice (engineer)", ()), "bob": ("Bob (security analyst)", ("approver",)),
           "carol": ("Carol (agent owner)", ())}
_GROUPS = {"engineering": "alice", "security": "bob"}


def policies_dir() -> Path:
    """``examples/demo/policies`` of the source tree (``cases.yaml`` tests it)."""
    for base in (Path(__file__).resolve().parents[3], Path.cwd()):
        candidate = base / "examples" / "demo" / "policies"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("examples/demo/policies not found: run from the tabard checkout")


def _seed_people(plane: ControlPlane) -> None:
    people = plane.directory.people
    for name, (display, roles) in _PEOPLE.items():
        if people.find_user(name) is None:
            people.add_user(name, display_name=display, roles=roles,
                            emails=[f"{name}@{DEMO_TRUST_DOMAIN}"])
    for group, member in _GROUPS.items():
        user = people.find_user(member)
        assert user is not None
        if people.find_group(group) is None:
            people.create_group({"displayName": group}, [MemberRef(user.id, "User")])


def _seed_secret(plane: ControlPlane) -> str:
    vault = plane.vault.secrets
    try:
        return vault.reveal(SECRET).text()
    except SecretNotFoundError:
        value = secrets.token_urlsafe(32)
        vault.put(SECRET, value.encode(), description="bearer the gateway injects on route "
                  f"{ROUTE} (tabard dev --demo)")
        return value


def _seed_route(plane: ControlPlane, upstream: str) -> Route:
    routes = plane.routes
    assert routes is not None
    now = plane.clock.now()
    route = Route(name=ROUTE, protocol=RouteProtocol.MCP, upstream=upstream,
                  credential=CredentialSpec(kind="static", secret=SECRET),
                  dlp_profile="default", approval_timeout=120.0, created_at=now,
                  updated_at=now)
    try:
        current = routes.get(ROUTE)
    except RouteNotFoundError:
        current = None
    if current is not None and (current.upstream, current.credential) == (
            route.upstream, route.credential):
        return current
    stored = (routes.create(route, actor=ACTOR) if current is None
              else routes.update(route, actor=ACTOR))
    if plane.audit is not None:  # not through REST: no admin record covers it
        plane.audit.append(AuditEvent(
            kind=AuditKind.ADMIN_ACTION, actor=ACTOR,
            what=What(operation="route.create" if current is None else "route.update",
                      target=f"route:{ROUTE}"),
            details={"route": stored.to_json()}))
    return stored


def seed(plane: ControlPlane, upstream: str) -> str:
    """People, policies, the secret (its value returned, for the demo server) and the
    route; safe to run again."""
    _seed_people(plane)
    plane.policies.apply(read_bundle(policies_dir()), actor=ACTOR)
    token = _seed_secret(plane)
    _seed_route(plane, upstream)
    return token


def seed_agent(plane: ControlPlane, node_spiffe_id: str) -> None:
    """The agent ``assistant`` under the dev node, its instances the processes of this
    user (after the node exists: its entry hangs off the node)."""
    agents = plane.agents.agents
    try:
        agent = agents.get(AGENT)
    except AgentNotFoundError:
        agent = agents.register(AgentSpec(
            name=AGENT, owner="carol", purpose="Engineering assistant of the tabard demo",
            model=ModelRef("demo", "assistant", "1"), hosting="local processes",
            tier="dev", tools=TOOLS, image_digest=_DIGEST,
            selectors=[f"unix:uid:{os.getuid()}"], policy_bindings={"dev": "demo"},
            delegation="hybrid", parent_id=node_spiffe_id), actor=ACTOR, activate=True)
    if agent.state is AgentState.REGISTERED:
        agents.activate(AGENT, actor=ACTOR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoScene:
    plane: ControlPlane
    upstream_url: str = ""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    def start_upstream(self, token: str, port: int) -> None:
        from tabard.demo.mcp_server import TOKEN_ENV

        self.log_path = self.plane.settings.data_dir / "demo-mcp.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tabard.demo.mcp_server", "--port", str(port)],
            env={**os.environ, TOKEN_ENV: token}, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the demo MCP server exited ({self.log_path})")
            try:
                # any HTTP answer (401 without the token) means it is up
                httpx.get(self.upstream_url, timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the demo MCP server did not start ({self.log_path})")

    def on_node_ready(self, node_spiffe_id: str, ready_file: Path) -> dict[str, Any]:
        """Seed the agent, add the demo's fields to the ready file; returns it."""
        seed_agent(self.plane, node_spiffe_id)
        ready: dict[str, Any] = json.loads(ready_file.read_text())
        ready.update({"demo_route": ROUTE, "demo_upstream_url": self.upstream_url,
                      "demo_agent": AGENT})
        write_ready_file(ready_file, ready)
        return ready

    def try_lines(self, ready: dict[str, Any], ready_file: Path) -> list[str]:
        gateway = ready.get("gateway_url")
        lines = [
            f"demo: people alice (engineering), bob (security, approver), carol (owner); "
            f"agent {AGENT} = the processes of uid {os.getuid()}; route {ROUTE} → "
            f"{self.upstream_url} (reachable only with the injected credential)",
            f"export TABARD_SERVER_URL={ready['server_url']}",
            "export TABARD_ADMIN_TOKEN=$(python3 -c \"import json;print(json.load("
            f"open('{ready_file}'))['admin_token'])\")",
            f"export SPIFFE_ENDPOINT_SOCKET={ready['workload_socket']}",
            "tabard routes list; tabard agents show assistant",
        ]
        if gateway:
            lines += [
                f"python examples/demo_agent.py --ready-file {ready_file} --user alice "
                "--tool jira.create_issue",
                f"python examples/demo_agent.py --ready-file {ready_file} --user alice "
                "--tool deploy.trigger   # held: tabard approvals list --state pending",
                "tabard approvals approve <id> --approver bob",
                f"python examples/demo_agent.py --ready-file {ready_file} --user bob "
                "--tool scanner.run_scan",
            ]
        else:
            lines.append("(no gateway_url in the ready file: the gateway is not part of this "
                         "build, so the demo tools cannot be called yet)")
        return lines

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_demo(plane: ControlPlane) -> DemoScene:
    """Seed what needs no node and start the demo MCP server; the agent comes with
    :meth:`DemoScene.on_node_ready`."""
    port = _free_port()
    scene = DemoScene(plane, upstream_url=f"http://127.0.0.1:{port}/mcp")
    token = seed(plane, scene.upstream_url)
    scene.start_upstream(token, port)
    return scene
