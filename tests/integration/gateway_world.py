"""A gateway in front of real MCP servers, all in this process on real sockets: an
authority, an authorization server, a policy engine over the product brief's bundle, a
vault, an audit log on SQLite, in-memory routes and approvals (tests/fakes/gateway.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from tabard.audit import AuditLog
from tabard.authority import Authority, MemoryKeyManager
from tabard.clock import SystemClock
from tabard.config import Settings
from tabard.gateway import CredentialBroker, Gateway, GatewayConfig
from tabard.gateway.bindings import IdSealer
from tabard.oauth import (
    ASSERTION_JWT_SPIFFE,
    GRANT_TOKEN_EXCHANGE,
    TOKEN_TYPE_JWT,
    AuthorizationServer,
    DownstreamJwtSigner,
    SigningKeys,
    VerifiedTokenCache,
)
from tabard.policy import (
    AgentFacts,
    DelegationMode,
    PolicyBundle,
    PolicyEngine,
    StaticFacts,
    UserFacts,
    compile_bundle,
)
from tabard.spiffe import SpiffeId, TrustDomain
from tabard.store import Database, SqlLeaseStore, SqlSecretStore
from tabard.store.audit import SqlAuditStore
from tabard.vault import EnvelopeCipher, Leases, Vault
from tests.fakes.authority_store import InMemoryAuthorityStore
from tests.fakes.gateway import (
    CredentialSpec,
    InMemoryApprovals,
    InMemoryRoutes,
    RouteProtocol,
    route,
)
from tests.fakes.oauth import FakeAgents, FakeUsers, InMemoryClientStore, InMemoryTokenStore

DEFAULTS = Settings()
TD = TrustDomain("demo.example")
AS_ISSUER = "https://as.demo.example"
INSTANCE = SpiffeId.parse("spiffe://demo.example/agent/assistant/instance/7")
UPSTREAM_SECRET = "up-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
PLANTED = "key AKIAIOSFODNN7EXAMPLE card 4111 1111 1111 1111"

CATALOG = """
tools:
  jira.create_issue: {category: jira, server: demo, mutating: true}
  github.read_repo: {category: github, server: demo}
  scanner.run_scan: {category: scanner, server: demo}
  deploy.trigger: {category: deploy, server: demo, mutating: true, risk: 80}
http_routes:
  repos: {path: "/repos/*"}
a2a_agents: [echo-agent, stream-agent]
"""
POLICIES = """
@id("assistant-may-use-the-demo")
permit (principal in Tabard::Agent::"assistant", action, resource);

@id("engineering-jira-github")
permit (principal in Tabard::Group::"engineering", action == Tabard::Action::"tools/call",
        resource)
when { resource in Tabard::ToolCategory::"jira" || resource in Tabard::ToolCategory::"github" };

@id("engineering-deploy-with-approval")
@approval_above("50")
permit (principal in Tabard::Group::"engineering", action == Tabard::Action::"tools/call",
        resource == Tabard::Tool::"deploy.trigger");

@id("security-scanner")
permit (principal in Tabard::Group::"security", action == Tabard::Action::"tools/call",
        resource in Tabard::ToolCategory::"scanner");

@id("people-read-repos")
permit (principal is Tabard::User, action == Tabard::Action::"GET",
        resource == Tabard::HttpRoute::"repos");

@id("engineering-a2a")
permit (principal in Tabard::Group::"engineering", action in Tabard::Action::"a2a",
        resource is Tabard::A2aAgent);
"""


class HeaderLog:
    """An ASGI wrapper that keeps the headers of every request the upstream receives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


def mcp_upstream(*, json_response: bool) -> HeaderLog:
    server = MCPServer("demo-tools")
    box: dict[str, HeaderLog] = {}

    @server.tool(name="jira.create_issue")
    def create_issue(summary: str) -> str:
        auth = box["log"].seen[-1].get("authorization", "")
        return f"created SEC-1 ({summary}); {PLANTED}; upstream saw {auth}"

    @server.tool(name="github.read_repo")
    def read_repo(repo: str) -> str:
        return f"README of {repo}"

    @server.tool(name="scanner.run_scan")
    def run_scan(target: str) -> str:
        return f"scan of {target}: clean"

    @server.tool(name="deploy.trigger")
    def deploy(service: str) -> str:
        return f"deployed {service}"

    log = HeaderLog(server.streamable_http_app(json_response=json_response))
    box["log"] = log
    return log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve(app: Any, port: int = 0) -> Served:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on",
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return Served(server, thread, f"http://127.0.0.1:{bound}")


@dataclass
class GatewayWorld:
    url: str
    authority: Authority
    oauth: AuthorizationServer
    routes: InMemoryRoutes
    approvals: InMemoryApprovals
    audit: AuditLog
    gateway: Gateway
    sse_upstream: HeaderLog
    json_upstream: HeaderLog
    leases: Leases
    served: list[Served] = field(default_factory=list)
    replica: Callable[[], Gateway] | None = None
    """Another gateway over the same services and key (a second replica)."""

    def add_route(self, name: str, protocol: RouteProtocol, app: ASGIApp,
                  path: str = "", port: int = 0) -> HeaderLog:
        """Serve ``app`` (its requests' headers kept) as the upstream of a new route with
        the static credential; the world stops it with the rest."""
        upstream = HeaderLog(app)
        served = serve(upstream, port)
        self.served.insert(0, served)
        self.routes.put(route(name=name, protocol=protocol, upstream=served.url + path,
                              credential=CredentialSpec(kind="static",
                                                        secret="demo-upstream-key"),
                              dlp_profile="default"))
        return upstream

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the gateway has written the outcome records of the calls it answered
        (they follow the answer)."""
        deadline = time.monotonic() + timeout
        while self.gateway.pending_outcomes:
            if time.monotonic() > deadline:
                raise AssertionError("the gateway did not write its outcome records")
            time.sleep(0.005)

    def agent_token(self, who: SpiffeId = INSTANCE, audience: str | None = None) -> str:
        return self.authority.mint_jwt_svid(who, audience or self.url)

    def audience(self, route: str, protocol: str = "mcp") -> str:
        return f"{self.url}/{protocol}/{route}"

    def user_token(self, user: str, resources: list[str], actor: SpiffeId = INSTANCE,
                   scope: str | None = None) -> str:
        svid = self.authority.mint_jwt_svid(actor, AS_ISSUER)
        form = {"grant_type": [GRANT_TOKEN_EXCHANGE],
                "subject_token": [self.oauth.mint_user_token(user)],
                "subject_token_type": [TOKEN_TYPE_JWT],
                "client_assertion_type": [ASSERTION_JWT_SPIFFE], "client_assertion": [svid],
                "actor_token": [svid], "actor_token_type": [TOKEN_TYPE_JWT],
                "resource": resources}
        if scope is not None:
            form["scope"] = [scope]
        return str(self.oauth.token(form)["access_token"])

    def headers(self, user: str | None, route: str = "demo-tools",
                protocol: str = "mcp") -> dict[str, str]:
        out = {"Tabard-Agent-Token": self.agent_token()}
        if user is not None:
            token = self.user_token(user, [self.audience(route, protocol)])
            out["Authorization"] = f"Bearer {token}"
        return out


def build_world(tmp: Path) -> Iterator[GatewayWorld]:
    clock = SystemClock()
    km = MemoryKeyManager()
    authority = Authority(TD, km, InMemoryAuthorityStore(), clock)
    authority.ensure_initialized()
    agents = FakeAgents()
    agents.add("assistant")
    oauth = AuthorizationServer(
        bundle=authority.bundle, keys=SigningKeys(km, "oauth-as", clock),
        tokens=InMemoryTokenStore(), clients=InMemoryClientStore(), agents=agents,
        users=FakeUsers(alice=True, bob=True), clock=clock,
        demo_keys=SigningKeys(km, "oauth-demo", clock), issuer=AS_ISSUER,
        verified_cache=VerifiedTokenCache(  # the hot-path caches as `tabard gateway` has them
            window=DEFAULTS.oauth.verified_token_window.total_seconds(),
            size=DEFAULTS.oauth.verified_token_cache_size))
    facts = StaticFacts.of(
        agents=[AgentFacts("assistant", "active", DelegationMode.HYBRID,
                           frozenset({"jira.create_issue", "github.read_repo",
                                      "scanner.run_scan", "deploy.trigger"}), owner="carol")],
        users=[UserFacts("alice", True, frozenset({"engineering"})),
               UserFacts("bob", True, frozenset({"security"}))])
    engine = PolicyEngine(facts, facts, trust_domain=TD.name)
    engine.load(compile_bundle(PolicyBundle.of({"catalog.yaml": CATALOG,
                                                "demo.cedar": POLICIES})), 1)
    db = Database(f"sqlite:///{tmp / 'gateway.db'}")
    db.migrate()
    audit = AuditLog(SqlAuditStore(db), clock, trust_domain=TD.name, timeout=10)
    vault = Vault(SqlSecretStore(db), EnvelopeCipher(b"gateway-test-kek-0123"), clock,
                  reveal_ttl=DEFAULTS.vault.reveal_cache_ttl)
    vault.put("demo-upstream-key", UPSTREAM_SECRET.encode())
    leases = Leases(SqlLeaseStore(db), clock, write_behind=DEFAULTS.vault.lease_write_behind,
                    queue_size=DEFAULTS.vault.lease_queue_size)
    sse_upstream, json_upstream = mcp_upstream(json_response=False), mcp_upstream(
        json_response=True)
    served = [serve(sse_upstream), serve(json_upstream)]
    static = CredentialSpec(kind="static", secret="demo-upstream-key")
    routes = InMemoryRoutes()
    routes.put(route(name="demo-tools", protocol=RouteProtocol.MCP,
                     upstream=served[0].url + "/mcp", credential=static,
                     dlp_profile="default", approval_timeout=20))
    routes.put(route(name="demo-json", protocol=RouteProtocol.MCP,
                     upstream=served[1].url + "/mcp", credential=static,
                     dlp_profile="default"))
    routes.put(route(name="demo-jwt", protocol=RouteProtocol.MCP,
                     upstream=served[1].url + "/mcp",
                     credential=CredentialSpec(kind="downstream_jwt")))
    routes.put(route(name="demo-short", protocol=RouteProtocol.MCP,
                     upstream=served[0].url + "/mcp", credential=static,
                     approval_timeout=1.0))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    approvals = InMemoryApprovals(clock)

    def make_gateway() -> Gateway:  # every replica derives its id key from the one KEK
        return Gateway(
            config=GatewayConfig(audience=url, base_url=url, max_body=64 * 1024,
                                 approval_poll=0.1),
            clock=clock, decider=engine, catalog=lambda: engine.compiled.catalog,
            bundle=authority.bundle, routes=routes, audit=audit,
            credentials=CredentialBroker(clock=clock, vault=vault, leases=leases,
                                         signer=DownstreamJwtSigner(oauth)),
            tokens=oauth, approvals=approvals,
            owner_of=lambda name: (a.owner if (a := facts.agent(name)) else None),
            id_sealer=IdSealer.from_kek(b"gateway-test-kek-0123"))

    gateway = make_gateway()
    served.append(serve(gateway, port))
    world = GatewayWorld(url, authority, oauth, routes, approvals, audit, gateway,
                         sse_upstream, json_upstream, leases, served, make_gateway)
    try:
        yield world
    finally:
        for s in reversed(served):
            s.stop()
        leases.close()
        audit.close()
        db.dispose()
