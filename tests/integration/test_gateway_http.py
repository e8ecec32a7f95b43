"""The gateway's HTTP routes in front of a raw echo upstream (on a real socket): the path
decided is the path forwarded, nothing of one caller reaches another, response headers
are cleaned, compressed answers are scanned decoded, and the audit record is written
before the upstream is called."""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from tabard.audit import AuditKind, AuditUnavailableError
from tabard.gateway import DENIED, UNAVAILABLE
from tests.fakes.gateway import CredentialSpec, RouteProtocol, route
from tests.integration.gateway_world import UPSTREAM_SECRET, GatewayWorld, build_world, serve

SEEN: list[dict[str, Any]] = []
PLANTED = b"key AKIAIOSFODNN7EXAMPLE card 4111 1111 1111 1111"


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Records what it receives; some paths answer with something a gateway must clean."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    SEEN.append({"path": scope["path"], "raw_path": scope["raw_path"].decode(),
                 "query": scope["query_string"].decode(), "headers": headers})
    auth = headers.get("authorization", "").encode()
    path: str = scope["path"]
    status, body = 200, json.dumps({"path": path}).encode()
    out = [(b"content-type", b"application/json")]
    if path.endswith("/gzip"):
        body = gzip.compress(PLANTED + b" auth=" + auth)
        out = [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")]
    elif path.endswith("/headers"):
        up = scope["server"]
        out += [(b"set-cookie", b"session=upstream-secret"),
                (b"x-upstream-auth", auth), (b"connection", b"x-hop"), (b"x-hop", b"1"),
                (b"location", f"http://{up[0]}:{up[1]}/base/repos/next".encode())]
    elif path.endswith("/sse"):
        out = [(b"content-type", b"text/event-stream")]
        body = b"data: fine\n\ndata: " + PLANTED + b"\n\ndata: never seen\n\n"
    elif path.endswith("/vnd"):
        out = [(b"content-type", b"application/vnd.demo+json")]
        body = b'{"k": "\\u0041KIAIOSFODNN7EXAMPLE"}'
    elif path.endswith("/away"):
        status = 302
        out += [(b"location", b"http://169.254.169.254/?tok=" + auth)]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    for world in build_world(Path(tmp_path_factory.mktemp("gateway-http"))):
        upstream = serve(echo)
        world.served.insert(0, upstream)
        world.routes.put(route(name="api", protocol=RouteProtocol.HTTP,
                               upstream=upstream.url + "/base", dlp_profile="default",
                               credential=CredentialSpec(kind="static",
                                                         secret="demo-upstream-key")))
        world.routes.put(route(name="api-block", protocol=RouteProtocol.HTTP,
                               upstream=upstream.url + "/base", dlp_profile="default",
                               dlp_action="block"))
        yield world


def raw_get(world: GatewayWorld, target: str) -> tuple[int, bytes]:
    """GET exactly ``target`` (no client-side normalisation); status and body."""
    host = world.url.split("//")[1]
    name, port = host.split(":")
    headers = "".join(f"{k}: {v}\r\n" for k, v in world.headers("alice", "api", "http").items())
    with socket.create_connection((name, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_the_decided_path_is_forwarded_and_traversal_is_refused(world: GatewayWorld) -> None:
    before = len(SEEN)
    assert raw_get(world, "/http/api/repos/x")[0] == 200
    assert raw_get(world, "/http/api//repos//x")[0] == 200
    assert [s["raw_path"] for s in SEEN[before:]] == ["/base/repos/x", "/base/repos/x"]
    before = len(SEEN)
    for target in ["/http/api/repos/../admin", "/http/api/repos/%2e%2E/admin",
                   "/http/api/repos/x%2f..%2f..%2fadmin", "/http/api/repos/x%2F",
                   "/http/api/repos/%5c",
                   "/http/api/repos/%00", "/http/api/repos/%3Fa", "/http/api/repos/%23",
                   "/http/api/repos/x%0d%0aX:%201", "/http/api/repos/./x", "/http/api/repos/%zz",
                   "/http/api/repos/%2e%2e/%2e%2e/etc"]:
        status, body = raw_get(world, target)
        assert status == 400, (target, status, body)
        assert json.loads(body)["code"] == "invalid_path"
    assert SEEN[before:] == []  # none of them reached the upstream


def test_an_upstream_cookie_is_never_replayed_to_another_call(world: GatewayWorld) -> None:
    with httpx.Client(timeout=10) as client:
        client.get(f"{world.url}/http/api/repos/headers",
                   headers=world.headers("alice", "api", "http"))
        before = len(SEEN)
        client.cookies.clear()
        assert client.get(f"{world.url}/http/api/repos/x",
                          headers=world.headers("bob", "api", "http")).status_code in (200, 403)
        client.get(f"{world.url}/http/api/repos/x",
                   headers=world.headers("alice", "api", "http"))
    assert SEEN[before:] and all("cookie" not in s["headers"] for s in SEEN[before:])


def test_response_headers_are_cleaned_and_forwarding_headers_are_the_gateways(
        world: GatewayWorld) -> None:
    headers = {**world.headers("alice", "api", "http"), "Forwarded": "for=1.2.3.4",
               "X-Forwarded-User": "admin", "X-Forwarded-For": "1.2.3.4",
               "Connection": "x-secret", "X-Secret": "hop"}
    with httpx.Client(timeout=10) as client:
        answer = client.get(f"{world.url}/http/api/repos/headers", headers=headers)
        away = client.get(f"{world.url}/http/api/repos/away",
                          headers=world.headers("alice", "api", "http"))
    seen = SEEN[-2]["headers"]
    assert "forwarded" not in seen and "x-forwarded-user" not in seen and "x-secret" not in seen
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-forwarded-proto"] == "http"
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers and "x-hop" not in answer.headers
    assert UPSTREAM_SECRET not in answer.headers["x-upstream-auth"]
    assert answer.headers["location"] == f"{world.url}/http/api/repos/next"
    assert away.status_code == 302 and "location" not in away.headers


def test_a_compressed_answer_is_decoded_before_dlp_and_the_scrubber(world: GatewayWorld) -> None:
    with httpx.Client(timeout=10) as client:
        answer = client.get(f"{world.url}/http/api/repos/gzip",
                            headers={**world.headers("alice", "api", "http"),
                                     "Accept-Encoding": "gzip"})
    assert SEEN[-1]["headers"]["accept-encoding"] == "identity"
    assert answer.status_code == 200 and "content-encoding" not in answer.headers
    assert b"AKIAIOSFODNN7EXAMPLE" not in answer.content
    assert b"[REDACTED:aws_access_key_id]" in answer.content
    assert UPSTREAM_SECRET.encode() not in answer.content


def test_no_upstream_call_runs_unaudited(world: GatewayWorld,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(event: Any) -> Any:
        raise AuditUnavailableError("the log is down")

    http_headers = world.headers("alice", "api", "http")
    mcp_headers = {**world.headers("alice", "demo-json"), "Accept":
                   "application/json, text/event-stream"}
    before, before_mcp = len(SEEN), len(world.json_upstream.seen)
    monkeypatch.setattr(world.audit, "append_async", down)
    with httpx.Client(timeout=10) as client:
        answer = client.get(f"{world.url}/http/api/repos/x", headers=http_headers)
        rpc = client.post(f"{world.url}/mcp/demo-json", headers=mcp_headers,
                          json={"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                "params": {"name": "github.read_repo",
                                           "arguments": {"repo": "x"}}})
    monkeypatch.undo()
    assert answer.status_code == 503 and answer.json()["code"] == "audit_unavailable"
    assert rpc.status_code == 503 and rpc.json()["id"] == 7
    assert rpc.json()["error"]["code"] == UNAVAILABLE
    assert len(SEEN) == before and len(world.json_upstream.seen) == before_mcp


def test_the_intent_is_recorded_before_the_call_and_the_outcome_after(
        world: GatewayWorld) -> None:
    head = world.audit.head()
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{world.url}/http/api/repos/x",
                          headers=world.headers("alice", "api", "http")).status_code == 200
    world.settle()
    intent, outcome = world.audit.records(after=head.seq if head else 0,
                                          kind=AuditKind.GATEWAY_DECISION)
    assert intent.body()["outcome"] == "pending" and outcome.body()["outcome"] == "success"
    assert outcome.body()["details"]["intent_seq"] == intent.seq


def test_deep_json_is_a_parse_error_and_a_fault_is_a_clean_recorded_500(
        world: GatewayWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {**world.headers("alice", "demo-json"), "Content-Type": "application/json"}
    with httpx.Client(timeout=10) as client:
        deep = client.post(f"{world.url}/mcp/demo-json", headers=headers,
                           content=b"[" * 50000)
        args = client.post(f"{world.url}/mcp/demo-json", headers=headers, content=(
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x",'
            b'"arguments":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}}"))
        assert deep.status_code == 400 and deep.json()["error"]["code"] == -32700
        assert args.status_code == 400 and args.json()["error"]["code"] == -32700

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(world.gateway, "_decide_all", broken)
        head = world.audit.head()
        answer = client.get(f"{world.url}/http/api/repos/x",
                            headers=world.headers("alice", "api", "http"))
    assert answer.status_code == 500 and answer.json()["code"] == "gateway_error"
    assert "Traceback" not in answer.text and "a bug" not in answer.text
    world.settle()
    record = world.audit.records(after=head.seq if head else 0,
                                 kind=AuditKind.GATEWAY_DECISION)[-1].body()
    assert record["outcome"] == "error" and "RuntimeError" in record["decision"]["reason"]


def test_arguments_the_context_cannot_carry_are_denied_not_dropped(world: GatewayWorld) -> None:
    headers = {**world.headers("alice", "demo-json"), "Accept":
               "application/json, text/event-stream"}
    before = len(world.json_upstream.seen)
    with httpx.Client(timeout=10) as client:
        for arguments, words in [({f"a{i}": i for i in range(65)}, "65 arguments"),
                                 ({"repo": "x", "a=b": 1}, "cannot be decided"),
                                 ({"repo": "x", "": 1}, "cannot be decided")]:
            answer = client.post(f"{world.url}/mcp/demo-json", headers=headers, json={
                "jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "github.read_repo", "arguments": arguments}}).json()
            assert answer["error"]["code"] == DENIED and words in answer["error"]["message"]
    assert len(world.json_upstream.seen) == before


def test_a_blocked_sse_stream_ends_with_an_error_event_and_plus_json_is_scanned_as_json(
        world: GatewayWorld) -> None:
    with httpx.Client(timeout=10) as client:
        sse = client.get(f"{world.url}/http/api-block/repos/sse",
                         headers=world.headers("alice", "api-block", "http"))
        vnd = client.get(f"{world.url}/http/api/repos/vnd",
                         headers=world.headers("alice", "api", "http"))
    events = [e for e in sse.text.split("\n\n") if e]
    assert events[0] == "data: fine" and "never seen" not in sse.text
    assert "AKIAIOSFODNN7EXAMPLE" not in sse.text
    last = json.loads(events[-1].split("data: ", 1)[1])
    assert last["error"]["code"] == DENIED
    assert vnd.json() == {"k": "[REDACTED:aws_access_key_id]"}


class _Crafted(socketserver.StreamRequestHandler):
    """An upstream speaking raw HTTP/1.1, to send what no well-behaved server sends."""

    heads: ClassVar[list[bytes]] = []

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline()
            if not line:
                return
            head += line
        type(self).heads.append(head)
        target = head.split(b" ")[1]
        body = gzip.compress(PLANTED)
        if target.endswith(b"/slow"):
            time.sleep(3)  # the answer's head never comes in time
            return
        if target.endswith(b"/double-encoding"):
            extra = b"Content-Encoding: gzip\r\nContent-Encoding: x-gzip\r\n"
            payload = b"Content-Length: %d\r\n\r\n" % len(body) + body
        else:  # a transfer coding other than chunked alone
            extra = b"Transfer-Encoding: gzip, chunked\r\n"
            payload = b"\r\n%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + extra + payload)


@pytest.fixture(scope="module")
def crafted(world: GatewayWorld) -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Crafted)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    world.routes.put(route(name="crafted", protocol=RouteProtocol.HTTP, upstream=url,
                           dlp_profile="default", timeout=1.0,
                           credential=CredentialSpec(kind="static",
                                                     secret="demo-upstream-key")))
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_answers_whose_coding_the_gateway_cannot_read_are_refused(
        world: GatewayWorld, crafted: str) -> None:
    headers = {**world.headers("alice", "crafted", "http"), "Expect": "100-continue"}
    with httpx.Client(timeout=10) as client:
        for path in ("double-encoding", "te-gzip"):
            answer = client.get(f"{world.url}/http/crafted/repos/{path}", headers=headers)
            assert answer.status_code == 502, path
            assert answer.json()["code"] == "upstream_encoding_unsupported"
            assert b"AKIA" not in answer.content
    # the body is read whole before forwarding: the agent's Expect never reaches the upstream
    assert _Crafted.heads and all(b"expect:" not in h.lower() for h in _Crafted.heads)


def test_a_head_that_never_comes_ends_at_the_routes_timeout(world: GatewayWorld,
                                                            crafted: str) -> None:
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        slow = client.get(f"{world.url}/http/crafted/repos/slow",
                          headers=world.headers("alice", "crafted", "http"))
    assert slow.status_code == 502 and slow.json()["code"] == "upstream_unreachable"
    assert 0.9 <= time.monotonic() - started < 2.5


def test_a_literal_hash_in_the_path_is_refused() -> None:
    from tabard.gateway.service import _Refusal, _safe_rest

    with pytest.raises(_Refusal):
        _safe_rest("/repos/a#b")
