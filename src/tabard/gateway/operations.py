"""What a request asks to do: JSON-RPC messages of MCP and A2A, HTTP method + path.

Each request message becomes an :class:`Operation`: an action and resource of the policy
schema to decide (``tools/call`` on ``Tool::jira.create_issue`` with its arguments), or a
message that passes (``initialize``, ``ping``, notifications, responses), or one the
gateway answers itself with a JSON-RPC error (an unknown A2A method). JSON-RPC 2.0:
https://www.jsonrpc.org/specification.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tabard.policy import ResourceType

__all__ = [
    "A2A_METHODS",
    "A2A_V1_METHODS",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "JsonRpcParseError",
    "Operation",
    "a2a_operations",
    "http_route_for",
    "mcp_operations",
    "parse_jsonrpc",
]

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
A2A_METHODS = frozenset({"message/send", "message/stream", "tasks/get", "tasks/cancel",
                         "tasks/resubscribe", "tasks/pushNotificationConfig/set",
                         "tasks/pushNotificationConfig/get"})
# A2A 1.0 names its JSON-RPC methods after its gRPC service; each is decided as the policy
# action of the same meaning (the 0.3 wire name). ``ListTasks`` (the upstream does not
# know the caller: it would show other callers' tasks, and the gateway would seal their
# ids for the lister) and ``GetExtendedAgentCard`` are not served.
A2A_V1_METHODS = {
    "SendMessage": "message/send", "SendStreamingMessage": "message/stream",
    "GetTask": "tasks/get", "CancelTask": "tasks/cancel", "SubscribeToTask": "tasks/resubscribe",
    "CreateTaskPushNotificationConfig": "tasks/pushNotificationConfig/set",
    "DeleteTaskPushNotificationConfig": "tasks/pushNotificationConfig/set",
    "GetTaskPushNotificationConfig": "tasks/pushNotificationConfig/get",
    "ListTaskPushNotificationConfigs": "tasks/pushNotificationConfig/get",
}
_MAX_BATCH = 64


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """A catalog path pattern: ``*`` matches any run of characters (as in scopes)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class JsonRpcParseError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Operation:
    """One JSON-RPC message (or the HTTP request). ``action`` None: passes undecided;
    ``error`` set: answered by the gateway with that JSON-RPC error."""

    method: str
    id: Any = None
    has_id: bool = False
    action: str | None = None
    resource_type: ResourceType | None = None
    resource_id: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    error: tuple[int, str] | None = None

    @property
    def resource(self) -> str | None:
        if self.resource_type is None or self.resource_id is None:
            return None
        return f"{self.resource_type.value}::{self.resource_id}"

    @property
    def label(self) -> str:
        return f"{self.action or self.method} {self.resource_id or ''}".strip()


class _DuplicateName(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateName
    return out


def parse_jsonrpc(body: bytes) -> tuple[list[dict[str, Any]], bool]:
    """The messages of a JSON-RPC body and whether it was a batch. A member name twice in
    one object is refused: the gateway decides on what it reads and forwards the bytes as
    sent, so the upstream must not be able to read another value."""
    try:
        value = json.loads(body, object_pairs_hook=_unique)
    except _DuplicateName:
        raise JsonRpcParseError(PARSE_ERROR, "Parse error: an object names a member twice"
                                ) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JsonRpcParseError(PARSE_ERROR, "Parse error: the body is not JSON (or nested "
                                "too deeply)") from None
    batch = isinstance(value, list)
    messages = value if batch else [value]
    if not messages or len(messages) > _MAX_BATCH:
        raise JsonRpcParseError(INVALID_REQUEST, f"Invalid Request: a batch holds 1-"
                                f"{_MAX_BATCH} messages")
    for message in messages:
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not (
                isinstance(message.get("method"), str) or "result" in message
                or "error" in message):
            raise JsonRpcParseError(INVALID_REQUEST,
                                    "Invalid Request: not a JSON-RPC 2.0 message")
    return messages, batch


def _params(message: dict[str, Any]) -> dict[str, Any]:
    params = message.get("params")
    return params if isinstance(params, dict) else {}


def _named(message: dict[str, Any], key: str) -> str | None:
    value = _params(message).get(key)
    return value if isinstance(value, str) and value else None


def mcp_operations(messages: list[dict[str, Any]]) -> list[Operation]:
    """MCP: ``tools/call``, ``resources/read`` and ``prompts/get`` are decided; the rest
    (``initialize``, ``ping``, listings, notifications, responses) pass."""
    out: list[Operation] = []
    for m in messages:
        method = m.get("method")
        has_id = "id" in m
        if not isinstance(method, str):  # a response to a server request
            out.append(Operation("response", m.get("id"), has_id))
            continue
        spec = {"tools/call": ("name", ResourceType.TOOL),
                "resources/read": ("uri", ResourceType.MCP_RESOURCE),
                "prompts/get": ("name", ResourceType.MCP_PROMPT)}.get(method)
        if spec is None:
            out.append(Operation(method, m.get("id"), has_id))
            continue
        name = _named(m, spec[0])
        if name is None:
            out.append(Operation(method, m.get("id"), has_id,
                                 error=(INVALID_PARAMS, f"Invalid params: {method} needs "
                                        f"'{spec[0]}'")))
            continue
        arguments = _params(m).get("arguments") if method != "resources/read" else None
        out.append(Operation(method, m.get("id"), has_id, action=method,
                             resource_type=spec[1], resource_id=name,
                             arguments=arguments if isinstance(arguments, dict) else {}))
    return out


def a2a_operations(messages: list[dict[str, Any]], target: str) -> list[Operation]:
    """A2A: every method of the protocol (0.3 and 1.0 names) is decided on the target agent
    (the route)."""
    out: list[Operation] = []
    for m in messages:
        method = m.get("method")
        has_id = "id" in m
        if not isinstance(method, str):
            out.append(Operation("response", m.get("id"), has_id))
        elif method in A2A_METHODS or method in A2A_V1_METHODS:
            out.append(Operation(method, m.get("id"), has_id,
                                 action=A2A_V1_METHODS.get(method, method),
                                 resource_type=ResourceType.A2A_AGENT, resource_id=target))
        else:
            out.append(Operation(method, m.get("id"), has_id,
                                 error=(METHOD_NOT_FOUND, f"Method not found: {method} is "
                                        "not served through the gateway")))
    return out


def http_route_for(routes: Mapping[str, str], path: str) -> str | None:
    """The catalog ``HttpRoute`` whose path glob matches ``path`` (the most specific: the
    longest pattern, then the id)."""
    best: tuple[int, str] | None = None
    for route_id, pattern in routes.items():
        if _glob(pattern).fullmatch(path):
            key = (-len(pattern), route_id)
            if best is None or key < best:
                best = key
    return best[1] if best else None
