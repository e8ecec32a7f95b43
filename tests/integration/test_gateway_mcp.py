"""The official MCP SDK as client → tabard gateway → an MCP server built with the same SDK,
over streamable HTTP on real sockets (issue 6 acceptance): decisions per tool, tools/list
filtered per user, the injected credential, DLP on plain and SSE answers, approval holds,
bad input, and one audit record per request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jwt
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from tabard.audit import AuditLog
from tabard.clock import SystemClock
from tabard.gateway import DENIED, Gateway
from tabard.spiffe import SpiffeId
from tests.integration.gateway_world import (
    INSTANCE,
    PLANTED,
    UPSTREAM_SECRET,
    GatewayWorld,
    build_world,
    serve,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    yield from build_world(Path(tmp_path_factory.mktemp("gateway")))


async def _session_call(world: GatewayWorld, user: str | None, route: str,
                        work: Any) -> Any:
    headers = world.headers(user, route)
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
            streamable_http_client(f"{world.url}/mcp/{route}", http_client=http) as streams, \
            ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        return await work(session)


def run(world: GatewayWorld, user: str | None, work: Any, route: str = "demo-tools") -> Any:
    try:
        return asyncio.run(_session_call(world, user, route, work))
    except BaseExceptionGroup as group:  # the SDK's task groups wrap what the call raised
        errors = group.subgroup(MCPError)
        while isinstance(errors, BaseExceptionGroup):
            errors = errors.exceptions[0]
        if isinstance(errors, MCPError):
            raise errors from None
        raise


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_allowed_tool_works_and_the_upstream_gets_the_injected_credential(
        world: GatewayWorld) -> None:
    before = len(world.sse_upstream.seen)

    async def work(session: ClientSession) -> Any:
        return await session.call_tool("github.read_repo", {"repo": "tabard"})

    result = run(world, "alice", work)
    assert not result.is_error and _text(result) == "README of tabard"
    seen = world.sse_upstream.seen[before:]
    assert seen and all(h.get("authorization") == f"Bearer {UPSTREAM_SECRET}" for h in seen)
    assert not any("tabard-agent-token" in h for h in seen)  # the agent's token is stripped


def test_a_downstream_jwt_route_gets_a_fresh_token_the_upstream_verifies_with_the_as_jwks(
        world: GatewayWorld) -> None:
    before = len(world.json_upstream.seen)

    async def work(session: ClientSession) -> Any:
        return await session.call_tool("github.read_repo", {"repo": "tabard"})

    result = run(world, "alice", work, route="demo-jwt")
    assert not result.is_error
    seen = world.json_upstream.seen[before:]
    tokens = {h["authorization"].removeprefix("Bearer ") for h in seen}
    assert len(tokens) == len(seen) > 1  # one token per request, each its own jti
    jwks = jwt.PyJWKSet.from_dict(world.oauth.jwks())
    for token in tokens:
        header = jwt.get_unverified_header(token)
        assert header["typ"] == "JWT"  # never an access token of the AS
        key = next(k for k in jwks.keys if k.key_id == header["kid"])
        claims = jwt.decode(token, key.key, algorithms=[header["alg"]],
                            audience=world.routes.get("demo-jwt").upstream,
                            issuer=world.oauth.issuer)
        assert claims["sub"] == "alice"
        assert claims["act"]["sub"] == str(INSTANCE)
        assert claims["exp"] - claims["iat"] <= 60


def test_denied_tool_is_a_jsonrpc_error_naming_the_reason(world: GatewayWorld) -> None:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool("scanner.run_scan", {"target": "prod"})

    with pytest.raises(MCPError) as caught:
        run(world, "alice", work)
    assert caught.value.error.code == DENIED
    message = caught.value.error.message
    assert message == ("denied by tabard: user side: no policy permits User alice to "
                       "tools/call Tool::scanner.run_scan")  # no policy ids


def test_tools_list_is_filtered_and_users_get_different_tool_sets(world: GatewayWorld) -> None:
    async def names(session: ClientSession) -> set[str]:
        return {t.name for t in (await session.list_tools()).tools}

    assert run(world, "alice", names) == {"jira.create_issue", "github.read_repo",
                                          "deploy.trigger"}
    assert run(world, "bob", names) == {"scanner.run_scan"}
    assert run(world, "bob", names, route="demo-json") == {"scanner.run_scan"}

    async def scan(session: ClientSession) -> Any:
        return await session.call_tool("scanner.run_scan", {"target": "prod"})

    assert _text(run(world, "bob", scan)) == "scan of prod: clean"


@pytest.mark.parametrize("route", ["demo-tools", "demo-json"])  # SSE and plain JSON answers
def test_dlp_redacts_planted_secrets_and_the_credential_echo(world: GatewayWorld,
                                                             route: str) -> None:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool("jira.create_issue", {"summary": "leak"})

    text = _text(run(world, "alice", work, route=route))
    assert text.startswith("created SEC-1 (leak)")
    assert "[REDACTED:aws_access_key_id]" in text and "[REDACTED:payment_card]" in text
    assert "AKIAIOSFODNN7EXAMPLE" not in text and "4111" not in text
    assert PLANTED not in text and UPSTREAM_SECRET not in text  # the upstream echoed it


def test_approval_gated_call_waits_then_succeeds_when_approved(world: GatewayWorld) -> None:
    async def approver() -> None:
        for _ in range(200):
            pending = [a for a in world.approvals.pending() if a.route == "demo-tools"]
            if pending:
                assert pending[0].reason.endswith("with arguments: service=api")
                world.approvals.decide(pending[0].id, approver="bob", approve=True)
                return
            await asyncio.sleep(0.05)

    async def work(session: ClientSession) -> Any:
        task = asyncio.create_task(approver())
        result = await session.call_tool("deploy.trigger", {"service": "api"})
        await task
        return result

    assert _text(run(world, "alice", work)) == "deployed api"


def test_approval_gated_call_is_denied_on_timeout(world: GatewayWorld) -> None:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool("deploy.trigger",
                                       {"service": "api", "note": "AKIAIOSFODNN7EXAMPLE"})

    with pytest.raises(MCPError) as caught:
        run(world, "alice", work, route="demo-short")
    assert "no approver decided" in caught.value.error.message
    held = [a for a in world.approvals._items.values() if a.route == "demo-short"][-1]
    assert "service=api" in held.reason and "AKIAIOSFODNN7EXAMPLE" not in held.reason
    assert "note=[REDACTED:aws_access_key_id]" in held.reason


def _post(world: GatewayWorld, path: str, content: bytes, headers: dict[str, str]
          ) -> httpx.Response:
    return httpx.post(f"{world.url}{path}", content=content, timeout=10, headers={
        "content-type": "application/json", "accept": "application/json, text/event-stream",
        **headers})


def test_bad_input_is_refused_clearly_and_the_gateway_keeps_serving(
        world: GatewayWorld) -> None:
    good = world.headers("alice")
    r = _post(world, "/mcp/demo-tools", b"{not json", good)
    assert r.status_code == 400 and r.json()["error"]["code"] == -32700
    r = _post(world, "/mcp/demo-tools", b'{"jsonrpc": "2.0", "id": 1}', good)
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600
    r = _post(world, "/mcp/demo-tools", b"[" + b'"x",' * 40_000 + b"1]", good)
    assert r.status_code == 413
    ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    r = _post(world, "/mcp/demo-tools", ping, {})
    assert r.status_code == 401 and "Tabard-Agent-Token" in r.json()["detail"]
    r = _post(world, "/mcp/demo-tools", ping, {"Tabard-Agent-Token": "not.a.jwt"})
    assert r.status_code == 401 and r.json()["code"] == "agent_unauthenticated"
    # a JWT-SVID for another audience, and a user token bound to another route
    r = _post(world, "/mcp/demo-tools", ping,
              {"Tabard-Agent-Token": world.agent_token(audience="https://elsewhere")})
    assert r.status_code == 401
    other = world.user_token("alice", [world.audience("demo-json")])
    r = _post(world, "/mcp/demo-tools", ping, {"Tabard-Agent-Token": world.agent_token(),
                                               "Authorization": f"Bearer {other}"})
    assert r.status_code == 401 and "another resource" in r.json()["detail"]
    r = _post(world, "/mcp/no-such-route", ping, good)
    assert r.status_code == 404 and r.json()["code"] == "unknown_route"
    # agent-as-principal is refused for a hybrid agent
    r = _post(world, "/mcp/demo-tools", json.dumps(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "github.read_repo", "arguments": {"repo": "x"}}}).encode(),
        {"Tabard-Agent-Token": world.agent_token()})
    assert r.json()["error"]["code"] == DENIED and "needs a user" in r.json()["error"]["message"]

    async def work(session: ClientSession) -> Any:
        return await session.call_tool("github.read_repo", {"repo": "still-up"})

    assert _text(run(world, "alice", work)) == "README of still-up"


def test_one_audit_record_per_request_with_lease_and_findings_never_the_secret(
        world: GatewayWorld) -> None:
    head = world.audit.head()
    after = head.seq if head else 0

    async def work(session: ClientSession) -> Any:
        return await session.call_tool("jira.create_issue", {"summary": "audit me"})

    run(world, "alice", work, route="demo-json")
    world.settle()
    records = [r for r in world.audit.records(after=after, limit=100)
               if r.body()["kind"] == "gateway_decision"]
    bodies = [r.body() for r in records]
    call = next(b for b in bodies if b["what"]["operation"] == "tools/call"
                and b["outcome"] != "pending")
    assert call["who"]["user"] == "alice" and call["who"]["owner"] == "carol"
    assert call["who"]["chain"][0] == "alice" and call["who"]["instance"] == "7"
    assert call["decision"]["effect"] == "allow"
    assert "assistant-may-use-the-demo" in call["decision"]["policies"]
    details = call["details"]
    assert details["route"] == "demo-json" and details["status"] == 200
    assert details["dlp_findings"] >= 2 and details["lease_id"]
    assert world.leases.get(details["lease_id"]).route == "demo-json"
    # initialize, its notification and the call: one record each
    assert len(bodies) >= 3
    dump = json.dumps(bodies)
    assert UPSTREAM_SECRET not in dump and "AKIAIOSFODNN7EXAMPLE" not in dump


def test_requests_are_refused_when_the_audit_log_cannot_record_them(
        world: GatewayWorld, tmp_path: Path) -> None:
    from tabard.store import Database
    from tabard.store.audit import SqlAuditStore

    db = Database(f"sqlite:///{tmp_path / 'closed.db'}")
    db.migrate()
    closed = AuditLog(SqlAuditStore(db), SystemClock(), trust_domain="demo.example")
    closed.close()
    g = world.gateway
    gateway = Gateway(config=g.config, clock=SystemClock(), decider=g._decider,
                      catalog=g._catalog, bundle=g._bundle, routes=g._routes, audit=closed,
                      credentials=g._credentials, tokens=g._tokens)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway),
                                     base_url=world.url) as client:
            return await client.post("/mcp/demo-tools", headers=world.headers("alice"),
                                     json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                           "params": {"name": "scanner.run_scan"}})

    response = asyncio.run(call())
    assert response.status_code == 503 and response.json()["code"] == "audit_unavailable"
    db.dispose()


def test_http_routes_are_decided_on_method_and_catalog_path(world: GatewayWorld) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route as StarletteRoute

    from tests.fakes.gateway import RouteProtocol

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path,
                             "auth": request.headers.get("authorization"),
                             "cookie": request.headers.get("cookie")})

    upstream = Starlette(routes=[StarletteRoute("/{rest:path}", echo,
                                                methods=["GET", "POST"])])
    world.add_route("api", RouteProtocol.HTTP, upstream)
    gateway = world.gateway
    headers = {**world.headers("alice", "api", "http"), "Cookie": "session=agent-own"}

    async def calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway),
                                     base_url=world.url) as client:
            answers = [await client.get("/http/api/repos/tabard", headers=headers),
                       await client.post("/http/api/repos/tabard", headers=headers),
                       await client.get("/http/api/admin", headers=headers)]
        await gateway.aclose()  # this loop's upstream connections (and outcome records)
        return answers

    ok, post, unknown = asyncio.run(calls())
    assert ok.status_code == 200
    # the agent's cookie is stripped; the credential reached the upstream but not the agent
    assert ok.json() == {"path": "/repos/tabard", "auth": "[REDACTED:credential]",
                         "cookie": None}
    assert post.status_code == 403 and post.json()["code"] == "denied"
    assert unknown.status_code == 404 and "matches no HTTP route" in unknown.json()["detail"]


INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "probe", "version": "1"}}}).encode()
TOOLS_LIST = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode()


def test_a_session_id_serves_only_the_instance_and_user_that_opened_it(
        world: GatewayWorld) -> None:
    alice = world.headers("alice", "demo-json")
    opened = _post(world, "/mcp/demo-json", INITIALIZE, alice)
    assert opened.status_code == 200
    sealed = opened.headers["mcp-session-id"]
    before = len(world.json_upstream.seen)
    listed = _post(world, "/mcp/demo-json", TOOLS_LIST,
                   {**alice, "mcp-session-id": sealed, "mcp-protocol-version": "2025-06-18"})
    assert listed.status_code == 200 and listed.json()["result"]["tools"]
    upstream_id = world.json_upstream.seen[-1]["mcp-session-id"]
    assert upstream_id != sealed and upstream_id not in sealed  # the agent never sees it
    assert len(world.json_upstream.seen) == before + 1

    other = SpiffeId.parse("spiffe://demo.example/agent/assistant/instance/8")
    other_instance = {"Tabard-Agent-Token": world.agent_token(other),
                      "Authorization": "Bearer " + world.user_token(
                          "alice", [world.audience("demo-json")], actor=other)}
    for headers, session in ((world.headers("bob", "demo-json"), sealed),  # another user
                             (other_instance, sealed),  # another instance, same user
                             ({"Tabard-Agent-Token": world.agent_token()}, sealed),  # none
                             (alice, upstream_id),  # the bare upstream id
                             (alice, sealed[:-4] + "aaaa")):  # a forged one
        refused = _post(world, "/mcp/demo-json", TOOLS_LIST,
                        {**headers, "mcp-session-id": session})
        assert refused.status_code == 404
        assert refused.json()["error"] == {"code": -32600, "message": "Session not found"}
    # the same session through another route (same upstream) is unknown there too
    assert _post(world, "/mcp/demo-jwt", TOOLS_LIST,
                 {**world.headers("alice", "demo-jwt"), "mcp-session-id": sealed}
                 ).status_code == 404
    assert len(world.json_upstream.seen) == before + 1  # none of them reached the upstream
    # another replica (same KEK, nothing shared but the key) serves the session
    assert world.replica is not None
    replica = serve(world.replica())
    try:
        again = httpx.post(f"{replica.url}/mcp/demo-json", content=TOOLS_LIST, timeout=10,
                           headers={"content-type": "application/json",
                                    "accept": "application/json, text/event-stream",
                                    **alice, "mcp-session-id": sealed,
                                    "mcp-protocol-version": "2025-06-18"})
        assert again.status_code == 200 and again.json()["result"]["tools"]
        assert world.json_upstream.seen[-1]["mcp-session-id"] == upstream_id
    finally:
        replica.stop()


def _demo_user_token(world: GatewayWorld, user: str, audience: str,
                     may_act: Any = None) -> str:
    """A user's own token from the demo issuer (one the AS trusts), with ``may_act``."""
    token = world.oauth.mint_user_token(user, audience=audience)
    if may_act is None:
        return token
    claims = jwt.decode(token, options={"verify_signature": False})
    key = world.oauth._demo_keys.active  # type: ignore[union-attr]
    return jwt.encode({**claims, "may_act": may_act}, key.private_key,
                      algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"})


def test_users_own_tokens_are_accepted_only_on_routes_that_opt_in_and_may_act_is_checked(
        world: GatewayWorld) -> None:
    json_route = world.routes.get("demo-json")
    world.routes.put(replace(json_route, name="demo-dual",
                             user_token_issuers=(str(world.oauth.demo_issuer),)))
    agent = {"Tabard-Agent-Token": world.agent_token()}

    def initialize(route: str, token: str) -> httpx.Response:
        return _post(world, f"/mcp/{route}", INITIALIZE,
                     {**agent, "Authorization": f"Bearer {token}"})

    # the default: a route takes no user's own token, however trusted its issuer
    refused = initialize("demo-json", _demo_user_token(world, "alice",
                                                       world.audience("demo-json")))
    assert refused.status_code == 401 and "dual-token mode is off" in refused.json()["detail"]
    dual = world.audience("demo-dual")
    assert initialize("demo-dual", _demo_user_token(world, "alice", dual)).status_code == 200
    for may_act in ({"sub": "spiffe://demo.example/agent/assistant"},  # the agent
                    {"sub": str(INSTANCE)}):  # or this instance
        answer = initialize("demo-dual", _demo_user_token(world, "alice", dual, may_act))
        assert answer.status_code == 200, answer.text
    other_instance = "spiffe://demo.example/agent/assistant/instance/8"
    for may_act in ({"sub": "spiffe://demo.example/agent/other"}, {"sub": other_instance},
                    {"iss": "x"}):
        refused = initialize("demo-dual", _demo_user_token(world, "alice", dual, may_act))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "the user token's may_act does not name this agent"
    # still audience-bound to the route
    other = _demo_user_token(world, "alice", world.audience("demo-json"))
    assert initialize("demo-dual", other).status_code == 401
    last = [r.body() for r in world.audit.records(after=0, limit=10_000)
            if r.body()["kind"] == "gateway_decision"][-1]
    assert last["details"]["status"] == 401
