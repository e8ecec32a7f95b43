"""The identity gateway: an ASGI app that authenticates, decides, injects, forwards, scans
and records every call to an MCP server, an A2A agent or an HTTP API (ARCHITECTURE §6).

Route ``N`` is served at ``/mcp/N``, ``/a2a/N`` and ``/http/N/...`` by its protocol. For
each request: the agent is authenticated and the user established (:mod:`.auth`); each
operation (:mod:`.operations`) gets a blended decision, re-made per call so a suspended or
retired agent stops at once; ``require_approval`` holds the call until an approver decides
or the route's approval timeout passes; the agent's own credentials are stripped and the
route's just-in-time credential injected (:mod:`.credentials`); the answer is streamed
back through the route's DLP profile (SSE event by event), ``tools/list`` answers are
filtered to the tools this agent may call for this user, and any echo of the injected
credential is blanked. One audit record per request, whatever its outcome; when the log
cannot take it the request is refused (a streamed answer is recorded when it ends, and cut
if the log fails then).

Forwarding is written on aiohttp's client (streamed both ways) because the reverse-proxy
packages for Python neither stream SSE through a per-event transform nor expose the hooks
this needs. aiohttp rather than httpx: on the gateway's budget (≤ 1 ms added at p50) httpx's
async client alone added 1.4 ms per request and served 290 requests/s at 16 connections on
the bench machine, aiohttp's 0.3 ms and 3,400/s (same upstream, same load generator).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import aiohttp
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from yarl import URL

from tabard.audit import AuditEvent, AuditKind, AuditLog, AuditUnavailableError, What, Who
from tabard.audit import Decision as AuditDecision
from tabard.clock import Clock
from tabard.discovery.dlp import (
    PROFILES,
    DlpAction,
    DlpBlockedError,
    DlpProfile,
    DlpScanner,
    Findings,
    SseScanner,
    StreamScanner,
)
from tabard.errors import NotFound, TabardError
from tabard.gateway.auth import (
    AGENT_TOKEN_HEADER,
    Caller,
    authenticate_agent,
    establish_user,
)
from tabard.gateway.bindings import (
    MCP_SESSION_HEADER,
    TASK_NOT_FOUND,
    Binding,
    IdSealer,
    UnknownIdError,
    seal_event_answer,
    seal_json_answer,
)
from tabard.gateway.bindings import current as current_binding
from tabard.gateway.credentials import CredentialBroker
from tabard.gateway.errors import (
    BodyTooLargeError,
    GatewayUnavailableError,
    UnknownRouteError,
)
from tabard.gateway.operations import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    JsonRpcParseError,
    Operation,
    a2a_operations,
    http_route_for,
    mcp_operations,
    parse_jsonrpc,
)
from tabard.gateway.ports import (
    ApprovalSource,
    Decider,
    RouteSource,
    RouteView,
    TokenVerifier,
)
from tabard.gateway.pushurls import push_url_problem, push_urls_of
from tabard.policy import (
    Catalog,
    Decision,
    DecisionRequest,
    Obligation,
    RequestContext,
    ResourceRef,
    ResourceType,
)
from tabard.policy.decision import MAX_ARGUMENTS
from tabard.policy.errors import InvalidDecisionRequestError
from tabard.spiffe import Bundle
from tabard.vault import CredentialContext

__all__ = ["DENIED", "UNAVAILABLE", "Gateway", "GatewayConfig", "public_reason"]

log = logging.getLogger("tabard.gateway")

# The gateway's own JSON-RPC error codes lie outside -32768..-32000: A2A gives -32001..-32009
# meanings of its own (-32003 is "push notifications not supported" to an A2A client).
DENIED = -31003  # a refusal by policy (or DLP)
UNAVAILABLE = -31004  # the call was not made: the audit log cannot record it
_AGENT_CARDS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate",
                         "proxy-authorization", "te", "trailer", "transfer-encoding",
                         "upgrade", "host", "content-length", "proxy-connection",
                         # the body is read whole before forwarding: no 100-continue wait
                         "expect"})
# never taken from the agent: the gateway sets its own X-Forwarded-For/-Proto/-Host
_FORWARDING = frozenset({"forwarded", "x-real-ip", "x-forwarded-for", "x-forwarded-proto",
                         "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
                         "x-forwarded-server", "x-forwarded-user"})
_STRIPPED = frozenset({"authorization", "cookie", AGENT_TOKEN_HEADER})
# what the HTTP client decodes itself; anything else would pass the scanners unread
_DECODABLE = frozenset({"", "identity", "gzip", "deflate"})
# what a forwarded query may hold (RFC 3986 query characters): anything else is refused, as
# the request line the upstream gets must be the one that was decided
_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
# headers the client would otherwise add on its own: the agent's pass as sent, or none
_NOT_ADDED = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_JSON_TYPES = ("application/json", "application/problem+json")


@dataclass(frozen=True)
class GatewayConfig:
    """``audience``: what agents' JWT-SVIDs must be addressed to (the public base URL);
    ``base_url``: the public base URL routes' default audiences are made from."""

    audience: str
    base_url: str
    max_body: int = 4 * 1024 * 1024
    max_buffered_response: int = 16 * 1024 * 1024
    approval_poll: float = 0.5
    route_cache_seconds: float = 1.0
    policy_refresh_seconds: float = 1.0
    owner_cache_seconds: float = 5.0


@dataclass
class _Record:
    """What the request's audit record will say."""

    started: float
    route: str | None = None
    protocol: str | None = None
    caller: Caller | None = None
    operations: list[str] = field(default_factory=list)
    effect: str = "deny"
    policies: tuple[str, ...] = ()
    reason: str | None = None
    obligations: tuple[str, ...] = ()
    lease_id: str | None = None
    approval_id: str | None = None
    findings: Findings = field(default_factory=Findings)
    status: int = 0
    outcome: str = "denied"
    method: str = ""
    intent_seq: int | None = None
    intent_failed: bool = False


class _Refusal(Exception):
    """Answer now with ``response``; the record says why."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _problem(status: int, code: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": code.replace("_", " "),
                         "status": status, "code": code, "detail": detail},
                        status_code=status, media_type="application/problem+json",
                        headers=headers or None)


def public_reason(decision: Decision) -> str:
    """Why a decision refused, in words an agent may read: the refusing reasons only, with
    policy ids left out."""
    for reason in decision.reasons:
        if "permitted by" in reason or reason.startswith("inside the scope") or (
                "not evaluated" in reason):
            continue
        reason = re.sub(r"forbidden by .*", "forbidden by policy", reason)
        return re.sub(r" \(policy [^)]*\)", "", reason)
    return "not allowed by policy"


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _rpc_error(id_: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


def _refused_rpc(messages: list[dict[str, Any]], batch: bool,
                 refused: list[tuple[Any, int, str]]) -> Response:
    """The answer to a call some of whose requests (``(id, code, message)``) are refused:
    their errors, and for every other request of a batch a refusal of its own."""
    errors = [_rpc_error(id_, code, message) for id_, code, message in refused]
    errors += [_rpc_error(m.get("id"), DENIED, "not forwarded: another request of this "
                          "batch was refused") for m in messages
               if "id" in m and all(m.get("id") != r[0] for r in refused)]
    if not errors:
        return Response(status_code=202)
    return _rpc_response(errors, batch)


def _rpc_response(errors: list[dict[str, Any]], batch: bool, status: int = 200) -> Response:
    body: Any = errors if batch else errors[0]
    return JSONResponse(body, status_code=status)


class _Scrubber:
    """Blanks any echo of the injected credential values in a byte stream, holding back a
    tail one byte shorter than the longest value so an echo cut by a chunk is seen whole."""

    def __init__(self, values: Sequence[str]) -> None:
        self._values = sorted({v.encode() for v in values if len(v) >= 8}, key=len,
                              reverse=True)
        self._hold = max((len(v) for v in self._values), default=1) - 1
        self._tail = b""

    def scrub(self, data: bytes) -> bytes:
        for value in self._values:
            if value in data:
                data = data.replace(value, b"[REDACTED:credential]")
        return data

    def feed(self, chunk: bytes) -> bytes:
        if not self._values:
            return chunk
        data = self.scrub(self._tail + chunk)
        if len(data) <= self._hold:
            self._tail = data
            return b""
        cut = len(data) - self._hold
        self._tail = data[cut:]
        return data[:cut]

    def finish(self) -> bytes:
        out, self._tail = self.scrub(self._tail), b""
        return out


def _sse_events(buffer: bytearray) -> list[bytes]:
    """Complete events (through their blank line) taken off the front of ``buffer``."""
    events: list[bytes] = []
    while True:
        ends = [i for i in (buffer.find(b"\n\n"), buffer.find(b"\r\n\r\n")) if i >= 0]
        if not ends:
            return events
        end = min(ends)
        size = end + (2 if buffer[end:end + 2] == b"\n\n" else 4)
        events.append(bytes(buffer[:size]))
        del buffer[:size]


def _gateway_card(data: bytes, route_url: str) -> bytes:
    """An A2A agent card that sends its reader through the gateway: every JSON-RPC
    interface (1.0 ``supportedInterfaces``, 0.3 ``url`` and ``additionalInterfaces``) names
    the route's URL, interfaces of other bindings (the gateway forwards JSON-RPC only) are
    removed, and so are the card's signatures, which no longer cover it. A body that is not
    a JSON object is answered as it came."""
    try:
        card = json.loads(data)
    except (ValueError, RecursionError):
        return data
    if not isinstance(card, dict):
        return data

    def through_gateway(interfaces: Any, binding_key: str) -> list[Any]:
        kept = []
        for interface in interfaces if isinstance(interfaces, list) else []:
            if isinstance(interface, dict) and str(
                    interface.get(binding_key) or "JSONRPC").upper() == "JSONRPC":
                kept.append({**interface, "url": route_url})
        return kept

    for key in ("supportedInterfaces", "supported_interfaces"):
        if key in card:
            binding = "protocolBinding" if key == "supportedInterfaces" else "protocol_binding"
            card[key] = through_gateway(card[key], binding)
    if "url" in card:  # A2A 0.3
        card["url"], card["preferredTransport"] = route_url, "JSONRPC"
    for key in ("additionalInterfaces", "additional_interfaces"):
        if key in card:
            card[key] = through_gateway(card[key], "transport")
    card.pop("signatures", None)
    return json.dumps(card, separators=(",", ":")).encode()


_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_PCT_REFUSED = frozenset({0x2F, 0x5C, 0x00, 0x3F, 0x23})  # / \\ NUL ? #


def _arguments_problem(arguments: dict[str, Any]) -> str | None:
    """Why these tool arguments cannot all go into the decision context, if they cannot."""
    if len(arguments) > MAX_ARGUMENTS:
        return (f"the call has {len(arguments)} arguments; at most {MAX_ARGUMENTS} can be "
                "decided")
    for key in arguments:
        if not isinstance(key, str) or not key or "=" in key:
            return f"the argument name {str(key)[:40]!r} cannot be decided (empty or has '=')"
    return None


def _shown_arguments(arguments: dict[str, Any]) -> str:
    """The call's arguments as an approver reads them: names and values, each value cut to
    80 characters, the whole to 1500, and secrets or personal data redacted by the default
    DLP profile (whatever the route's action, nothing here is blocked)."""
    if not arguments:
        return ""
    parts = []
    for key, value in list(arguments.items())[:MAX_ARGUMENTS]:
        text = value if isinstance(value, str) else _compact(value)
        parts.append(f"{str(key)[:40]}={text[:80]}{'...' if len(text) > 80 else ''}")
    base = PROFILES["default"]
    scanner = DlpScanner(DlpProfile(base.name, action=DlpAction.REDACT, kinds=base.kinds))
    shown, _ = scanner.scan_text("; ".join(parts))
    return f" with arguments: {shown[:1500]}"


def _is_json(content_type: str) -> bool:
    """JSON and any ``+json`` structured-syntax type (RFC 6839) get the JSON-aware scanner."""
    return content_type in _JSON_TYPES or content_type.endswith("+json")


def _connection_named(value: str | None) -> set[str]:
    """The header names a ``Connection`` header lists (hop-by-hop by declaration)."""
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def _bad_path(detail: str) -> _Refusal:
    return _Refusal(_problem(400, "invalid_path", detail))


def _safe_rest(rest: str) -> str:
    """The path after the route name, checked so that what policy decides is what the
    upstream receives: printable ASCII only; no ``.``/``..`` segment, literal or
    percent-encoded; no percent-encoded ``/``, ``\\``, NUL, ``?``, ``#`` or control
    character, no malformed escape, no literal ``\\``; runs of ``/`` collapse to one."""
    if any(not 0x21 <= ord(c) <= 0x7E for c in rest):
        raise _bad_path("the path holds a character that is not printable ASCII")
    if "\\" in rest:
        raise _bad_path("the path holds a backslash")
    if "#" in rest:
        raise _bad_path("the path holds a '#'")
    if "%" in _PCT.sub("", rest):
        raise _bad_path("the path holds a malformed percent escape")
    for escape in _PCT.findall(rest):
        code = int(escape, 16)
        if code in _PCT_REFUSED or code < 0x20 or code == 0x7F:
            raise _bad_path(f"the path holds the encoded character %{escape}, which is "
                            "refused")
    rest = re.sub(r"/{2,}", "/", rest)
    for segment in rest.split("/"):
        if _PCT.sub(lambda m: chr(int(m.group(1), 16)), segment) in (".", ".."):
            raise _bad_path("the path holds a '.' or '..' segment")
    return rest


class Gateway:
    """The ASGI application (module docstring). ``refresh`` (e.g.
    :meth:`tabard.policy.PolicyService.refresh`) loads a policy epoch another process
    stored, at most once per ``policy_refresh_seconds``; ``owner_of`` names an agent
    definition's owner for the audit record."""

    def __init__(
        self,
        *,
        config: GatewayConfig,
        clock: Clock,
        decider: Decider,
        catalog: Callable[[], Catalog],
        bundle: Callable[[], Bundle],
        routes: RouteSource,
        audit: AuditLog,
        credentials: CredentialBroker,
        tokens: TokenVerifier | None = None,
        approvals: ApprovalSource | None = None,
        refresh: Callable[[], None] | None = None,
        owner_of: Callable[[str], str | None] | None = None,
        id_sealer: IdSealer | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._decider = decider
        self._catalog = catalog
        self._bundle = bundle
        self._routes = routes
        self._audit = audit
        self._credentials = credentials
        self._tokens = tokens
        self._approvals = approvals
        self._refresh = refresh
        self._owner_of = owner_of
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._route_cache: dict[str, tuple[float, int, RouteView]] = {}
        self._version: tuple[float, int] = (-1e18, 0)
        self._refreshed = -1e18
        self._owners: dict[str, tuple[float, str | None]] = {}
        self._outcomes: set[asyncio.Task[None]] = set()
        self._ids = id_sealer or IdSealer.ephemeral()  # bindings.py: shared by replicas

    def bind(self, base_url: str) -> None:
        """Learn the public base URL once listening: it is the default audience of agents'
        JWT-SVIDs and the base of routes' default audiences, unless configured."""
        base = base_url.rstrip("/")
        self.config = replace(self.config, audience=self.config.audience or base,
                              base_url=self.config.base_url or base)

    # --- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        await self.settle()
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        """The upstream connection pool of the running event loop (one per loop: a pool
        belongs to the loop it was made in)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # no cookie jar: an upstream's Set-Cookie must never reach another caller
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=512, limit_per_host=0,
                                               enable_cleanup_closed=True),
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True,
                skip_auto_headers=_NOT_ADDED, raise_for_status=False)
            self._sessions = {lp: sn for lp, sn in self._sessions.items() if not lp.is_closed()}
            self._sessions[loop] = session
        return session

    # --- the request ----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        if path == "/healthz":
            return JSONResponse({"status": "ok"})
        record = _Record(started=time.perf_counter(), method=request.method)
        try:
            response = await self._handle(request, record)
        except _Refusal as refusal:
            response = refusal.response
        except ClientDisconnect:
            record.outcome, record.reason = "error", "the client went away"
            response = Response(status_code=499)
        except TabardError as exc:  # a dependency refused (vault, approvals, ...)
            record.outcome, record.reason = "error", str(exc)
            status = 503 if exc.code in ("gateway_unavailable", "unavailable") else 502
            response = _problem(status, exc.code, str(exc))
        except Exception as exc:  # a fault of the gateway: recorded, answered cleanly
            log.exception("gateway request failed")
            record.outcome = "error"
            record.reason = f"internal error: {type(exc).__name__}"
            response = _problem(500, "gateway_error", "the gateway failed to handle this "
                                "request; it was recorded")
        if isinstance(response, StreamingResponse):
            return response  # recorded when the stream ends
        record.status = response.status_code
        if record.intent_seq is not None:
            # the call was recorded before it was made; its outcome follows the answer
            self._record_outcome(record)
            return response
        if not await self._write(record):
            if record.intent_failed:
                return response
            return _problem(503, "audit_unavailable", "the request was refused because the "
                            "audit log cannot record it")
        return response

    async def _handle(self, request: Request, record: _Record) -> Response:
        protocol, name, rest = self._split(request)
        record.protocol, record.route = protocol, name
        route = await self._route(protocol, name)
        caller = await self._authenticate(request, route)
        record.caller = caller
        body = await self._body(request)

        messages: list[dict[str, Any]] = []
        if protocol == "http":
            ops = [self._http_operation(request.method, rest or "/")]
            batch = False
        elif request.method == "POST" and not rest:
            try:
                messages, batch = parse_jsonrpc(body)
            except JsonRpcParseError as exc:
                record.reason = exc.message
                record.operations = ["jsonrpc"]
                raise _Refusal(_rpc_response([_rpc_error(None, exc.code, exc.message)],
                                             False, 400)) from None
            ops = (mcp_operations(messages) if protocol == "mcp"
                   else a2a_operations(messages, name))
        elif protocol == "a2a" and request.method == "GET" and rest in _AGENT_CARDS:
            ops, batch = [Operation("agent-card")], False
        elif protocol == "mcp" and request.method in ("GET", "DELETE") and not rest:
            ops, batch = [Operation(f"mcp/{request.method.lower()}")], False
        else:
            raise _Refusal(_problem(404, "not_found", f"no {request.method} {rest or '/'} "
                                    f"on {protocol} route {name!r}"))
        record.operations = [op.label for op in ops]
        binding, body = self._bind(request, protocol, name, caller, messages, batch, body,
                                   record)
        self._check_push_urls(protocol, route, messages, batch, record)

        decisions = await self._decide_all(ops, caller, route, record, batch)
        tools_list_ids = {json.dumps(op.id) for op in ops
                          if op.method == "tools/list" and op.has_id}
        redact = route.dlp_profile is not None or Obligation.REDACT in {
            o for d in decisions for o in d.obligations}
        record.obligations = tuple(sorted({o.value for d in decisions for o in d.obligations}))
        operation = next((op for op in ops if op.action), None)
        # fail closed: the call is recorded (pending) before anything reaches the upstream
        if not await self._write(record, intent=True):
            record.intent_failed = True
            record.outcome, record.reason = "error", "the audit log cannot record the call"
            raise _Refusal(self._audit_refusal(ops, batch, protocol))
        headers = await self._upstream_headers(request, route, caller, operation, record)
        binding.to_upstream(headers)
        ids = [op.id for op in ops if op.has_id]
        response = await self._forward(request, route, rest, body, headers, record,
                                   redact=redact, tools_list=tools_list_ids, caller=caller,
                                   rpc_id=ids[0] if len(ids) == 1 and not batch else None,
                                   card=ops[0].method == "agent-card")
        binding.seal_session_header(response.headers)
        return response

    # --- session and task ids bound to their caller (bindings.py) ---------------------------

    def _bind(self, request: Request, protocol: str, route: str, caller: Caller,
              messages: list[dict[str, Any]], batch: bool, body: bytes, record: _Record
              ) -> tuple[Binding, bytes]:
        """The request's :class:`Binding` (made current for the answer's transforms), and
        the body to forward: an ``Mcp-Session-Id`` or A2A task id that is not this
        caller's is refused as unknown; sealed task ids are replaced by the upstream's."""
        binding = Binding(self._ids, protocol=protocol, route=route,
                          instance=caller.agent.spiffe_id, user=caller.user)
        current_binding.set(binding)
        if protocol == "mcp":
            try:
                binding.check_session(request.headers.get(MCP_SESSION_HEADER))
            except UnknownIdError as exc:
                record.outcome, record.reason = "denied", f"Mcp-Session-Id refused: {exc}"
                # the MCP SDK server's answer to an unknown session, word for word
                raise _Refusal(JSONResponse(_rpc_error(None, INVALID_REQUEST,
                                                       "Session not found"),
                                            status_code=404)) from None
        if protocol != "a2a" or not messages:
            return binding, body
        refused, changed = binding.open_requests(messages)
        if refused:
            record.outcome = "denied"
            record.reason = "task id refused: " + "; ".join(sorted({r.reason for r in refused}))
            raise _Refusal(_refused_rpc(messages, batch, [
                (r.rpc_id, TASK_NOT_FOUND, "Task not found") for r in refused
                if r.rpc_id is not None]))
        if changed:
            body = json.dumps(messages if batch else messages[0],
                              separators=(",", ":")).encode()
        return binding, body

    def _check_push_urls(self, protocol: str, route: RouteView,
                         messages: list[dict[str, Any]], batch: bool, record: _Record) -> None:
        """A2A: every push-notification webhook a request registers must pass
        :func:`push_url_problem` for the route's ``push_urls``; otherwise the call is
        refused (JSON-RPC ``-31003``) and never forwarded."""
        if protocol != "a2a":
            return
        refused: list[tuple[Any, int, str]] = []
        problems: set[str] = set()
        for message in messages:
            for url in push_urls_of(str(message.get("method")), message.get("params")):
                problem = push_url_problem(url, route.push_urls)
                if problem is not None:
                    problems.add(problem)
                    if "id" in message:
                        refused.append((message["id"], DENIED, f"denied by tabard: {problem}"))
                    break
        if problems:
            record.outcome, record.reason = "denied", "; ".join(sorted(problems))[:1000]
            raise _Refusal(_refused_rpc(messages, batch, refused))

    def _audit_refusal(self, ops: list[Operation], batch: bool, protocol: str) -> Response:
        detail = "the call was refused because the audit log cannot record it"
        if protocol == "http":
            return _problem(503, "audit_unavailable", detail)
        errors = [_rpc_error(op.id, UNAVAILABLE, detail) for op in ops if op.has_id]
        if not errors:
            return Response(status_code=503)
        return _rpc_response(errors, batch, 503)

    def _split(self, request: Request) -> tuple[str, str, str]:
        """Protocol, route name and the rest of the path, taken from the raw request target
        (what the client sent, before any decoding). The rest is what is decided and what is
        forwarded, byte for byte; see :func:`_safe_rest` for what is refused."""
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1")
        parts = path.split("/", 3)
        if len(parts) < 3 or parts[1] not in ("mcp", "a2a", "http") or not parts[2]:
            raise _Refusal(_problem(404, "unknown_route",
                                    f"{path[:200]} is not a gateway route (/mcp/<name>, "
                                    "/a2a/<name>, /http/<name>/...)"))
        rest = _safe_rest("/" + parts[3]) if len(parts) == 4 else ""
        return parts[1], parts[2], rest

    # --- routes, caller, body -------------------------------------------------------------

    async def _routes_version(self) -> int:
        now = time.monotonic()
        checked, version = self._version
        if now - checked > self.config.route_cache_seconds:
            version = await asyncio.to_thread(self._routes.version)
            self._version = (now, version)
        return version

    async def _route(self, protocol: str, name: str) -> RouteView:
        version = await self._routes_version()
        cached = self._route_cache.get(name)
        if cached is not None and cached[1] == version:
            route = cached[2]
        else:
            try:
                route = await asyncio.to_thread(self._routes.get, name)
            except NotFound:
                raise _Refusal(_problem(404, UnknownRouteError.code,
                                        f"no route named {name!r}")) from None
            if len(self._route_cache) > 10_000:
                self._route_cache.clear()
            self._route_cache[name] = (time.monotonic(), version, route)
        if str(route.protocol) != protocol:
            raise _Refusal(_problem(404, UnknownRouteError.code,
                                    f"route {name!r} is served at /{route.protocol}/{name}"))
        return route

    def route_audience(self, route: RouteView) -> str:
        return route.audience or f"{self.config.base_url}/{route.protocol}/{route.name}"

    async def _authenticate(self, request: Request, route: RouteView) -> Caller:
        tls = (request.scope.get("extensions") or {}).get("tls") or {}
        try:
            agent = authenticate_agent(
                tls_chain=tls.get("client_cert_chain") or (),
                agent_token=request.headers.get(AGENT_TOKEN_HEADER),
                bundle=self._bundle, audience=self.config.audience,
                now=self._clock.timestamp())
            return establish_user(request.headers.get("authorization"), agent,
                                  verifier=self._tokens, audience=self.route_audience(route),
                                  user_issuers=route.user_token_issuers)
        except TabardError as exc:
            raise _Refusal(_problem(401, exc.code, str(exc),
                                    **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
                           ) from None

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.config.max_body:
            raise _Refusal(self._too_large())
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.config.max_body:
                raise _Refusal(self._too_large())
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> Response:
        return _problem(413, BodyTooLargeError.code,
                        f"the request body exceeds {self.config.max_body} bytes")

    def _http_operation(self, method: str, path: str) -> Operation:
        route_id = http_route_for(self._catalog().http_routes, path)
        if route_id is None:
            return Operation(method, path=path,
                             error=(METHOD_NOT_FOUND, f"{path} matches no HTTP route of the "
                                    "policy catalog"))
        return Operation(method, action=method, resource_type=ResourceType.HTTP_ROUTE,
                         resource_id=route_id, path=path)

    # --- deciding -------------------------------------------------------------------------

    async def _maybe_refresh(self) -> None:
        if self._refresh is None:
            return
        now = time.monotonic()
        if now - self._refreshed > self.config.policy_refresh_seconds:
            self._refreshed = now
            await asyncio.to_thread(self._refresh)

    def _request(self, op: Operation, caller: Caller) -> DecisionRequest:
        assert op.action is not None and op.resource_type is not None
        assert op.resource_id is not None
        arguments = frozenset(
            f"{k}={v if isinstance(v, str) else _compact(v)}" for k, v in op.arguments.items())
        return DecisionRequest(
            agent=caller.agent.spiffe_id, user=caller.user, action=op.action,
            resource=ResourceRef(op.resource_type, op.resource_id), chain=caller.hops,
            context=RequestContext(path=op.path, arguments=arguments))

    def decide(self, op: Operation, caller: Caller) -> Decision:
        from tabard.policy import Effect
        problem = _arguments_problem(op.arguments)
        if problem is not None:  # never decide on fewer arguments than the call carries
            return Decision(Effect.DENY, (), (f"the request cannot be decided: {problem}",),
                            (), (), None, 0)
        try:
            return self._decider.decide(self._request(op, caller))
        except InvalidDecisionRequestError as exc:
            return Decision(Effect.DENY, (), (f"the request cannot be decided: {exc}",),
                            (), (), None, 0)

    async def _decide_all(self, ops: list[Operation], caller: Caller, route: RouteView,
                          record: _Record, batch: bool) -> list[Decision]:
        await self._maybe_refresh()
        decisions: list[Decision] = []
        refusals: dict[int, tuple[int, str]] = {}
        policies: list[str] = []
        for index, op in enumerate(ops):
            if op.error is not None:
                refusals[index] = op.error
                continue
            if op.action is None:
                continue
            decision = self.decide(op, caller)
            policies += [*decision.agent_policies, *decision.user_policies]
            if decision.allowed and Obligation.REQUIRE_APPROVAL in decision.obligations:
                decision = await self._hold(op, caller, route, decision, record)
            if not decision.allowed:
                refusals[index] = (DENIED, f"denied by tabard: {public_reason(decision)}")
            decisions.append(decision)
        record.policies = tuple(dict.fromkeys(policies))
        if not refusals:
            record.effect, record.outcome = "allow", "success"
            return decisions
        record.effect, record.outcome = "deny", "denied"
        record.reason = "; ".join(sorted({m for _, m in refusals.values()}))[:1000]
        if record.protocol == "http":
            code, message = next(iter(refusals.values()))
            status = 404 if code == METHOD_NOT_FOUND else 403
            raise _Refusal(_problem(status, "denied" if status == 403 else "not_found",
                                    message))
        errors = []
        for index, op in enumerate(ops):
            if not op.has_id:
                continue
            code, message = refusals.get(index, (DENIED, "not forwarded: another request "
                                                 "of this batch was refused"))
            errors.append(_rpc_error(op.id, code, message))
        if not errors:  # only notifications were refused: JSON-RPC answers nothing
            raise _Refusal(Response(status_code=202))
        raise _Refusal(_rpc_response(errors, batch))

    async def _hold(self, op: Operation, caller: Caller, route: RouteView,
                    decision: Decision, record: _Record) -> Decision:
        """Hold the call until an approver decides, or deny when the hold times out."""
        from tabard.policy import Effect

        def deny(reason: str) -> Decision:
            return Decision(Effect.DENY, (), (reason,), decision.agent_policies,
                            decision.user_policies, decision.delegation,
                            decision.policy_epoch)

        if self._approvals is None:
            return deny("this call needs a human approval and no approvals service is "
                        "configured")
        approval = await asyncio.to_thread(
            self._approvals.request, agent=caller.agent.agent,
            instance=caller.agent.spiffe_id, user=caller.user, action=str(op.action),
            resource=str(op.resource), route=route.name,
            reason=f"{op.action} {op.resource_id} on route {route.name}"
            + _shown_arguments(op.arguments),
            timeout=timedelta(seconds=route.approval_timeout))
        record.approval_id = approval.id
        deadline = time.monotonic() + route.approval_timeout
        while True:
            state = str(approval.state)
            if state == "approved":
                kept = tuple(o for o in decision.obligations
                             if o is not Obligation.REQUIRE_APPROVAL)
                return Decision(decision.effect, kept, decision.reasons,
                                decision.agent_policies, decision.user_policies,
                                decision.delegation, decision.policy_epoch)
            if state == "denied":
                return deny(f"an approver denied this call (approval {approval.id})")
            if state == "expired" or time.monotonic() >= deadline:
                return deny(f"no approver decided within {route.approval_timeout:g} s "
                            f"(approval {approval.id})")
            await asyncio.sleep(self.config.approval_poll)
            approval = await asyncio.to_thread(self._approvals.get, approval.id)

    # --- credentials and forwarding -------------------------------------------------------

    async def _upstream_headers(self, request: Request, route: RouteView, caller: Caller,
                                op: Operation | None, record: _Record) -> dict[str, str]:
        stripped = _STRIPPED | {h.lower() for h in route.strip_headers}
        stripped |= _connection_named(request.headers.get("connection"))
        headers = {k: v for k, v in request.headers.items()
                   if k not in _HOP_BY_HOP and k not in stripped and k not in _FORWARDING
                   and not k.startswith("x-forwarded-")}
        if request.client is not None:
            headers["x-forwarded-for"] = request.client.host
        headers["x-forwarded-proto"] = request.url.scheme
        if "host" in request.headers:
            headers["x-forwarded-host"] = request.headers["host"]
        # answers are scanned and scrubbed, so they must come uncompressed
        headers["accept-encoding"] = "identity"
        provider = self._credentials.provider(route, await self._routes_version())
        if provider is None:
            return headers
        from tabard.policy.scopes import operation_token
        token = None
        if op is not None and op.resource_type is not None and op.resource_id is not None:
            kind = {ResourceType.TOOL: "tools", ResourceType.MCP_RESOURCE: "resources",
                    ResourceType.MCP_PROMPT: "prompts", ResourceType.A2A_AGENT: "a2a",
                    ResourceType.HTTP_ROUTE: "http"}[op.resource_type]
            name = f"{op.action}:{op.path}" if kind == "http" else op.resource_id
            token = operation_token(kind, name)
        context = CredentialContext(
            route=route.name, upstream=route.credential.audience or route.upstream,
            agent=caller.agent.agent, agent_instance=caller.agent.spiffe_id, user=caller.user,
            chain=[h.actor for h in caller.hops], scope=caller.scope, operation=token)
        # from memory when it can be (a recent reveal, a queued lease, a cached token);
        # what waits on the database or the network goes to a worker thread
        credential = provider.issue_now(context)
        if credential is None:
            credential = await asyncio.to_thread(provider.issue, context)
        record.lease_id = credential.lease_id
        for name_, value in credential.headers.items():
            headers = {k: v for k, v in headers.items() if k != name_.lower()}
            headers[name_] = value
        # the whole header value and the bare token after its scheme are both blanked
        values = list(credential.headers.values())
        request.state.injected = values + [v.split(" ", 1)[1] for v in values if " " in v]
        return headers

    async def _forward(self, request: Request, route: RouteView, rest: str, body: bytes,
                       headers: dict[str, str], record: _Record, *, redact: bool,
                       tools_list: set[str], caller: Caller, rpc_id: Any = None,
                       card: bool = False) -> Response:
        url = self._upstream_url(request, route, rest)
        timeout = aiohttp.ClientTimeout(total=None, connect=route.timeout,
                                        sock_read=route.timeout)
        try:
            # sending and the answer's head within the route's timeout; then each read
            async with asyncio.timeout(route.timeout):
                response = await self._client().request(
                    request.method, url, headers=headers, data=body or None,
                    allow_redirects=False, timeout=timeout, compress=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            record.outcome, record.reason = "error", f"upstream unreachable: {type(exc).__name__}"
            raise _Refusal(_problem(502, "upstream_unreachable",
                                    f"the upstream of route {route.name!r} did not answer")
                           ) from None
        injected: list[str] = getattr(request.state, "injected", [])
        encodings = response.headers.getall("content-encoding", [])
        transfer = response.headers.getall("transfer-encoding", [])
        encoding = encodings[0].strip().lower() if len(encodings) == 1 else (
            "" if not encodings else ", ".join(encodings))
        if encoding not in _DECODABLE or any(t.strip().lower() != "chunked"
                                             for t in transfer):
            response.close()
            record.outcome, record.reason = "error", (
                f"upstream content-encoding {', '.join(encodings)!r}, transfer-encoding "
                f"{', '.join(transfer)!r}")
            raise _Refusal(_problem(502, "upstream_encoding_unsupported",
                                    f"the upstream of route {route.name!r} answered with "
                                    "a content encoding the gateway cannot inspect"))
        scanner = self._scanner(route) if redact else None
        out_headers = self._response_headers(response, url, route, injected)
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        record.status = response.status
        if not card and (content_type == "text/event-stream" or (
                not _is_json(content_type) and not tools_list)):
            return StreamingResponse(
                self._stream(response, record, scanner, injected, tools_list, caller,
                             sse=content_type == "text/event-stream", rpc_id=rpc_id),
                status_code=response.status, headers=out_headers)
        try:
            data = await self._read_bounded(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            response.close()
            record.outcome, record.reason = "error", f"upstream answer broke: {type(exc).__name__}"
            raise _Refusal(_problem(502, "upstream_unreachable",
                                    f"the upstream of route {route.name!r} broke off its "
                                    "answer")) from None
        if data is None:
            response.close()
            record.outcome, record.reason = "error", "the upstream answer is too large"
            raise _Refusal(_problem(502, "upstream_answer_too_large",
                                    "the upstream answer is too large to inspect"))
        response.release()
        try:
            data = self._transform_json(data, scanner, record.findings, tools_list, caller)
        except DlpBlockedError as exc:
            record.outcome, record.reason = "denied", str(exc)
            raise _Refusal(self._blocked(data, exc)) from None
        data = _Scrubber(injected).scrub(data)
        if card and response.status == 200:
            data = _gateway_card(data, f"{self.config.base_url}/{route.protocol}/{route.name}")
        return Response(data, status_code=response.status, headers=out_headers)

    def _response_headers(self, response: aiohttp.ClientResponse, sent: URL, route: RouteView,
                          injected: list[str]) -> dict[str, str]:
        """The upstream's headers an agent may see: no hop-by-hop header nor one named in
        ``Connection``, no ``Set-Cookie``, no ``Content-Encoding`` (bodies are decoded),
        ``Location`` only when it points into the route's upstream (rewritten to the
        gateway), and any injected credential value blanked in every value. A header sent
        more than once becomes one, its values joined with commas."""
        dropped = _HOP_BY_HOP | {"set-cookie", "set-cookie2", "content-encoding"}
        dropped |= _connection_named(response.headers.get("connection"))
        scrubber = _Scrubber(injected)
        out: dict[str, str] = {}
        for key, value in response.headers.items():
            key = key.lower()
            if key in dropped:
                continue
            if key == "location":
                rewritten = self._location(value, sent, route)
                if rewritten is None:
                    continue
                value = rewritten
            value = scrubber.scrub(value.encode("latin-1", "replace")).decode("latin-1")
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def _location(self, location: str, sent: URL, route: RouteView) -> str | None:
        """``location`` as the gateway's URL of the same resource, or None when it points
        anywhere but under the route's upstream."""
        try:
            target = sent.join(URL(location, encoded=True))
            base = URL(route.upstream)
        except (ValueError, TypeError):
            return None
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            return None
        prefix = base.raw_path.rstrip("/")
        path = target.raw_path_qs
        if not (target.raw_path == prefix or path.startswith(prefix + "/")
                or path.startswith(prefix + "?")):
            return None
        rest = path[len(prefix):]
        if any(not 0x21 <= ord(c) <= 0x7E for c in rest):
            return None
        return f"{self.config.base_url}/{route.protocol}/{route.name}{rest}"

    def _upstream_url(self, request: Request, route: RouteView, rest: str) -> URL:
        """The route's upstream with exactly the decided path and the raw query appended;
        a query with anything outside RFC 3986's query characters is refused rather than
        forwarded."""
        base = URL(route.upstream)
        path = base.raw_path
        path = path.rstrip("/") + rest if rest else path
        query = (request.scope.get("query_string") or b"").decode("latin-1")
        if query and not _QUERY.fullmatch(query):
            raise _bad_path("the query holds a character that cannot be forwarded as sent")
        target = path + ("?" + query if query else "")
        url = URL(str(base.origin()) + target, encoded=True)
        if url.raw_path_qs != target:
            raise _bad_path("the request target cannot be forwarded as sent")
        return url

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes | None:
        chunks, size = [], 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self.config.max_buffered_response:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _blocked(self, data: bytes, exc: DlpBlockedError) -> Response:
        with contextlib.suppress(ValueError, RecursionError):
            value = json.loads(data)
            if isinstance(value, dict) and "id" in value:
                return JSONResponse(_rpc_error(value["id"], DENIED, str(exc)))
        return _problem(403, exc.code, str(exc))

    def _scanner(self, route: RouteView) -> DlpScanner:
        base = PROFILES.get(route.dlp_profile or "default", PROFILES["default"])
        try:
            action = DlpAction(route.dlp_action)
        except ValueError:
            action = base.action
        return DlpScanner(DlpProfile(base.name, action=action, kinds=base.kinds))

    def _filter_tools(self, message: Any, tools_list: set[str], caller: Caller) -> bool:
        """Filter a ``tools/list`` result in place; True when it was one."""
        if not (isinstance(message, dict) and json.dumps(message.get("id")) in tools_list):
            return False
        result = message.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return False
        kept = []
        for tool in result["tools"]:
            name = tool.get("name") if isinstance(tool, dict) else None
            if isinstance(name, str) and name and self.decide(
                    Operation("tools/call", action="tools/call",
                              resource_type=ResourceType.TOOL, resource_id=name),
                    caller).allowed:
                kept.append(tool)
        result["tools"] = kept
        return True

    def _transform_json(self, data: bytes, scanner: DlpScanner | None, findings: Findings,
                        tools_list: set[str], caller: Caller) -> bytes:
        data = seal_json_answer(data)
        if tools_list:
            with contextlib.suppress(ValueError, RecursionError):
                value = json.loads(data)
                messages = value if isinstance(value, list) else [value]
                if any([self._filter_tools(m, tools_list, caller) for m in messages]):
                    data = json.dumps(value, separators=(",", ":")).encode()
        if scanner is None:
            return data
        try:
            json.loads(data)
        except (ValueError, RecursionError):
            text, found = scanner.scan_text(data.decode("utf-8", "surrogateescape"))
            findings.add(found)
            return text.encode("utf-8", "surrogateescape")
        out, found = scanner.scan_json(data)
        findings.add(found)
        return out

    def _transform_event(self, event: bytes, tools_list: set[str], caller: Caller) -> bytes:
        event = seal_event_answer(event)
        if not tools_list:
            return event
        lines = event.decode("utf-8", "surrogateescape").splitlines()
        data = "\n".join(line[5:].removeprefix(" ") for line in lines
                         if line.startswith("data:"))
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return event
        if not self._filter_tools(value, tools_list, caller):
            return event
        others = [line for line in lines if line and not line.startswith("data:")]
        text = "\n".join([*others, "data: " + json.dumps(value, separators=(",", ":"))])
        return (text + "\n\n").encode("utf-8", "surrogateescape")

    async def _stream(self, response: aiohttp.ClientResponse, record: _Record,
                      scanner: DlpScanner | None, injected: list[str], tools_list: set[str],
                      caller: Caller, *, sse: bool, rpc_id: Any = None
                      ) -> AsyncIterator[bytes]:
        scrubber = _Scrubber(injected)
        sse_scanner = SseScanner(scanner) if (sse and scanner) else None
        raw_scanner = StreamScanner(scanner) if (scanner and not sse) else None
        buffer = bytearray()
        try:
            async for chunk in response.content.iter_any():  # decoded: scanned as sent
                if sse:
                    buffer += chunk
                    for event in _sse_events(buffer):  # each event leaves once it is clean
                        event = self._transform_event(event, tools_list, caller)
                        data = scrubber.feed(sse_scanner.feed(event) if sse_scanner
                                             else event)
                        if data:
                            yield data
                    if len(buffer) > (1 << 20):
                        record.outcome, record.reason = "error", "an SSE event is too large"
                        return
                    continue
                else:
                    data = raw_scanner.feed(chunk) if raw_scanner else chunk
                data = scrubber.feed(data)
                if data:
                    yield data
            tail = bytes(buffer)
            if sse_scanner is not None:
                tail = sse_scanner.feed(tail) + sse_scanner.finish()
            elif raw_scanner is not None:
                tail = raw_scanner.finish()
            tail = scrubber.feed(tail) + scrubber.finish()
            if tail:
                yield tail
        except DlpBlockedError as exc:
            record.outcome, record.reason = "denied", str(exc)
            if sse:  # the client reads why the stream ends, as a JSON-RPC error event
                error = _rpc_error(rpc_id, DENIED, str(exc))
                yield b"event: message\ndata: " + json.dumps(error).encode() + b"\n\n"
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.outcome, record.reason = "error", f"upstream stream broke: {type(exc).__name__}"
        finally:
            for part in (sse_scanner, raw_scanner):
                if part is not None:
                    record.findings.add(part.findings)
            if response.content.at_eof():
                response.release()  # read to its end: the connection goes back to the pool
            else:
                response.close()
            if not await self._write(record):
                log.error("a streamed answer was cut: the audit log cannot record it")
                raise GatewayUnavailableError("the audit log cannot record this request")

    # --- the audit record -----------------------------------------------------------------

    @property
    def pending_outcomes(self) -> int:
        """Outcome records of answered calls not yet written."""
        return len(self._outcomes)

    async def settle(self) -> None:
        """Wait until the outcome records of answered calls are written (at shutdown)."""
        while self._outcomes:
            await asyncio.gather(*list(self._outcomes), return_exceptions=True)

    def _record_outcome(self, record: _Record) -> None:
        """Write the outcome of a forwarded call once its answer has left: the call is
        already in the log (its intent, written before the upstream was called), so the
        answer does not wait for a second durable commit."""
        task = asyncio.get_running_loop().create_task(self._write_outcome(record))
        self._outcomes.add(task)
        task.add_done_callback(self._outcomes.discard)

    async def _write_outcome(self, record: _Record) -> None:
        """The outcome rides with the next commit another request pays for (its intent's,
        typically), or is committed alone shortly after (:data:`tabard.audit.service.DEFER`)."""
        try:
            written = asyncio.wrap_future(self._audit.append_deferred(
                await self._event(record)))
            # a shutdown that cancels this task must not withdraw the queued record
            await asyncio.shield(written)
        except AuditUnavailableError as exc:
            log.error("the outcome of a forwarded call was not recorded (%s); its intent "
                      "record %s stands for it", exc, record.intent_seq)

    async def _owner(self, agent: str) -> str | None:
        if self._owner_of is None:
            return None
        now = time.monotonic()
        cached = self._owners.get(agent)
        if cached is not None and now - cached[0] < self.config.owner_cache_seconds:
            return cached[1]
        owner = await asyncio.to_thread(self._owner_of, agent)
        if len(self._owners) > 10_000:
            self._owners.clear()
        self._owners[agent] = (now, owner)
        return owner

    async def _write(self, record: _Record, *, intent: bool = False) -> bool:
        """Append the request's record; with ``intent``, the ``pending`` record written
        before the upstream is called (its sequence number goes into the outcome's)."""
        event = await self._event(record, intent=intent)
        try:
            written = await self._audit.append_async(event)
        except AuditUnavailableError as exc:
            log.error("gateway request refused: the audit log is unavailable (%s)", exc)
            return False
        if intent:
            record.intent_seq = written.seq
        return True

    async def _event(self, record: _Record, *, intent: bool = False) -> AuditEvent:
        caller = record.caller
        who = Who()
        if caller is not None:
            who = Who.of_spiffe_id(caller.agent.spiffe_id, user=caller.user,
                                   chain=caller.chain,
                                   owner=await self._owner(caller.agent.agent))
        details: dict[str, Any] = {
            "route": record.route, "protocol": record.protocol, "method": record.method,
            "status": record.status,
            "latency_us": int((time.perf_counter() - record.started) * 1e6),
            "dlp_findings": record.findings.total,
        }
        if record.operations:
            details["operations"] = record.operations[:64]
        if record.obligations:
            details["obligations"] = list(record.obligations)
        if record.lease_id:
            details["lease_id"] = record.lease_id
        if record.approval_id:
            details["approval_id"] = record.approval_id
        if record.findings.total:
            details["dlp_kinds"] = record.findings.as_dict()
        if caller is not None:
            details["token"] = caller.token_kind
        if record.intent_seq is not None and not intent:
            details["intent_seq"] = record.intent_seq
        operation = record.operations[0].split(" ")[0] if len(record.operations) == 1 else (
            "batch" if record.operations else record.method)
        event = AuditEvent(
            kind=AuditKind.GATEWAY_DECISION, actor="gateway", who=who,
            what=What(operation=operation, target=f"route:{record.route}" if record.route
                      else None),
            decision=AuditDecision(effect=record.effect, policies=record.policies,
                                   reason=record.reason),
            outcome="pending" if intent else record.outcome,
            details={k: v for k, v in details.items() if v is not None})
        return event

