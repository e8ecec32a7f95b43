"""MCP session ids and A2A task ids bound to the caller that opened them.

An upstream hands out an ``Mcp-Session-Id`` (on ``initialize``) or an A2A task id (in a
task, a status or artifact event, a push-notification config); whoever presents it later
reaches that session or task. Another caller allowed on the same route must not be able
to: the gateway never shows the upstream's id to an agent. It hands out a *sealed* id
instead, the upstream id encrypted with AES-SIV (RFC 5297, from ``cryptography``) under
the gateway's id key, with the route, the kind of id, the calling agent instance (its
SPIFFE ID) and the user as associated data. On the way in a sealed id is opened with the
current caller's route, instance and user; it opens only for the caller it was sealed
for, and the upstream then receives its own id. An id that does not open (sealed for
another instance, user or route, forged, or a bare upstream id learned elsewhere) is
refused as unknown, so the binding cannot be bypassed by presenting an id the gateway
never handed out: MCP answers 404 with the JSON-RPC error the MCP SDK server gives for an
unknown session, A2A the protocol's ``TaskNotFoundError`` (-32001). Neither answer says
whether the id exists for somebody else.

Why sealing and no table: the gateway is stateless with any number of replicas; a sealed
id carries its own binding, so every replica holding the key (derived from the
deployment's KEK, like the vault's keys) opens it, and nothing is stored. AES-SIV is
deterministic: one upstream id sealed for one caller gives one sealed id, so the A2A SDK
client, which compares the task id of each event with the task's, sees the same id each
time, and an MCP session id re-sent by the upstream on every answer stays the same. The
sealed form is ``tb1`` and lowercase base32 (no ``-`` nor upper case: the DLP detectors
never mistake it for a key); the upstream id stays secret (encrypted, not only MAC'd).

The per-request :class:`Binding` is reached by the answer transforms through
:data:`current` (a context variable set when the request is bound; the streamed answer's
task inherits it), so the forwarding code carries no new parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Iterator, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MCP_SESSION_HEADER", "TASK_NOT_FOUND", "Binding", "IdSealer", "Refused",
           "UnknownIdError", "current", "seal_event_answer", "seal_json_answer"]

MCP_SESSION_HEADER = "mcp-session-id"
TASK_NOT_FOUND = -32001  # A2A TaskNotFoundError
_PREFIX = "tb1"
_MAX_SEALED = 2048
_MAX_ID = 1024
_KEY_INFO = b"tabard gateway id binding key v1"
_AAD = b"tabard-gateway-id/v1"

_SESSION = "mcp-session"
_TASK = "a2a-task"

# A2A requests naming a task: where the id is (0.3 and 1.0 JSON-RPC names)
_PARAMS_ID = frozenset({"tasks/get", "tasks/cancel", "tasks/resubscribe",
                        "tasks/pushNotificationConfig/get",
                        "tasks/pushNotificationConfig/list",
                        "tasks/pushNotificationConfig/delete",
                        "GetTask", "CancelTask", "SubscribeToTask"})
_TASK_ID_KEYS = ("taskId", "task_id")
_REFERENCE_KEYS = ("referenceTaskIds", "reference_task_ids")
# where an answer nests objects that may carry task ids
_NESTED = ("task", "message", "statusUpdate", "status_update", "artifactUpdate",
           "artifact_update", "status", "config", "pushNotificationConfig",
           "push_notification_config", "taskPushNotificationConfig",
           "task_push_notification_config", "configuration")
_NESTED_LISTS = ("history", "configs")

current: ContextVar[Binding | None] = ContextVar("tabard_gateway_binding", default=None)


class UnknownIdError(Exception):
    """A session or task id that does not open for this caller."""


class IdSealer:
    """Seals and opens ids under one 64-byte AES-SIV key (AES-256-SIV)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 64:
            raise ValueError("the id key is 64 bytes")
        self._siv = AESSIV(key)

    @classmethod
    def from_kek(cls, kek: bytes) -> IdSealer:
        """The key every gateway replica of a deployment derives from its KEK."""
        if not kek:
            raise ValueError("the KEK is empty")
        return cls(HKDF(algorithm=hashes.SHA256(), length=64, salt=None,
                        info=_KEY_INFO).derive(kek))

    @classmethod
    def ephemeral(cls) -> IdSealer:
        """A key of this process only (one gateway process, tests): ids it seals open
        nowhere else."""
        return cls(os.urandom(64))

    def seal(self, value: str, aad: list[bytes]) -> str:
        sealed = self._siv.encrypt(value.encode(), aad)
        return _PREFIX + base64.b32encode(sealed).decode().rstrip("=").lower()

    def open(self, token: str, aad: list[bytes]) -> str:
        """The id ``token`` seals for ``aad``; :class:`UnknownIdError` otherwise."""
        if not token.startswith(_PREFIX) or len(token) > _MAX_SEALED:
            raise UnknownIdError("not an id this gateway handed out")
        body = token[len(_PREFIX):].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
            return self._siv.decrypt(raw, aad).decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            raise UnknownIdError("not an id handed out to this caller") from None


@dataclass(frozen=True)
class Refused:
    """One JSON-RPC request of the call names a task the caller does not own."""

    rpc_id: Any
    reason: str


class _Changed:
    """Whether a walk sealed or opened anything (so bodies are re-encoded only then)."""

    def __init__(self) -> None:
        self.value = False


class Binding:
    """The ids of one request: its route and caller. ``user`` is None when the agent acts
    as principal (that is a caller of its own)."""

    def __init__(self, sealer: IdSealer, *, protocol: str, route: str, instance: str,
                 user: str | None) -> None:
        self._sealer = sealer
        self.protocol = protocol
        self._upstream_session: str | None = None
        self._owner = [route.encode(), instance.encode(),
                       b"u:" + user.encode() if user is not None else b"-"]

    def _aad(self, kind: str) -> list[bytes]:
        return [_AAD, kind.encode(), *self._owner]

    def seal(self, kind: str, value: str) -> str:
        return self._sealer.seal(value, self._aad(kind))

    def open(self, kind: str, token: str) -> str:
        return self._sealer.open(token, self._aad(kind))

    # --- MCP ------------------------------------------------------------------------------

    def check_session(self, session_id: str | None) -> None:
        """Open the agent's ``Mcp-Session-Id`` (kept for :meth:`to_upstream`);
        :class:`UnknownIdError` when it is not this caller's."""
        if session_id is not None:
            self._upstream_session = self.open(_SESSION, session_id.strip())

    def to_upstream(self, headers: MutableMapping[str, str]) -> None:
        """MCP: the headers sent upstream carry the upstream's own session id."""
        if self.protocol != "mcp":
            return
        for key in [k for k in headers if k.lower() == MCP_SESSION_HEADER]:
            del headers[key]
        if self._upstream_session is not None:
            headers[MCP_SESSION_HEADER] = self._upstream_session

    def seal_session_header(self, headers: Any) -> None:
        """MCP: seal the ``Mcp-Session-Id`` of an answer's headers (a mutable mapping such
        as Starlette's ``MutableHeaders``) for this caller."""
        if self.protocol != "mcp":
            return
        value = headers.get(MCP_SESSION_HEADER)
        if value:
            headers[MCP_SESSION_HEADER] = self.seal(_SESSION, value)

    # --- A2A requests ---------------------------------------------------------------------

    def open_requests(self, messages: list[dict[str, Any]]) -> tuple[list[Refused], bool]:
        """Replace, in place, each sealed task id the JSON-RPC requests carry by the
        upstream's; the requests naming a task that is not this caller's, and whether
        anything was replaced."""
        refused: list[Refused] = []
        changed = _Changed()
        for message in messages:
            method, params = message.get("method"), message.get("params")
            if not isinstance(method, str) or not isinstance(params, dict):
                continue
            try:
                self._open_params(method, params, changed)
            except UnknownIdError as exc:
                refused.append(Refused(message.get("id"), str(exc)))
        return refused, changed.value

    def _open_params(self, method: str, params: dict[str, Any], changed: _Changed) -> None:
        if method in _PARAMS_ID:
            self._open_key(params, "id", changed)
        self._open_task_fields(params, changed, depth=0)

    def _open_key(self, holder: dict[str, Any], key: str, changed: _Changed) -> None:
        if key not in holder or holder[key] is None:
            return
        value = holder[key]
        if not isinstance(value, str):
            raise UnknownIdError(f"the task id in {key!r} is not a string")
        holder[key] = self.open(_TASK, value)
        changed.value = True

    def _open_task_fields(self, value: dict[str, Any], changed: _Changed, depth: int) -> None:
        """Every task id a request may carry: ``taskId`` (push configs, a message that
        continues a task), ``referenceTaskIds``, in the params and the objects they nest
        (the message, the configuration and its push-notification config)."""
        if depth > 4:
            return
        for key in _TASK_ID_KEYS:
            self._open_key(value, key, changed)
        for key in _REFERENCE_KEYS:
            refs = value.get(key)
            if refs is None:
                continue
            if not isinstance(refs, list):
                raise UnknownIdError(f"{key!r} is not a list of task ids")
            for index in range(len(refs)):
                if not isinstance(refs[index], str):
                    raise UnknownIdError(f"{key!r} holds a task id that is not a string")
                refs[index] = self.open(_TASK, refs[index])
                changed.value = True
        for key in _NESTED:
            nested = value.get(key)
            if isinstance(nested, dict):
                self._open_task_fields(nested, changed, depth + 1)

    # --- A2A answers ----------------------------------------------------------------------

    def seal_answer(self, value: Any) -> bool:
        """Seal, in place, the task ids of JSON-RPC answers (one or a batch); whether any
        was sealed."""
        changed = _Changed()
        for message in value if isinstance(value, list) else [value]:
            if isinstance(message, dict) and "result" in message:
                result = message["result"]
                for item in result if isinstance(result, list) else [result]:
                    if isinstance(item, dict):
                        self._seal_object(item, changed, depth=0)
        return changed.value

    def _seal_object(self, value: dict[str, Any], changed: _Changed, depth: int) -> None:
        """A task (``id`` with a ``status``, or 0.3 ``kind: task``), the ``taskId`` and
        ``referenceTaskIds`` of messages, events and push configs, and the objects they
        nest (``task``, ``message``, ``statusUpdate``, ``status.message``, ``history``,
        ``configs``...)."""
        if depth > 6:
            return
        is_task = value.get("kind") == "task" or (
            "status" in value and "messageId" not in value and "message_id" not in value
            and "taskId" not in value and "task_id" not in value)
        if is_task and isinstance(value.get("id"), str) and len(value["id"]) <= _MAX_ID:
            value["id"] = self.seal(_TASK, value["id"])
            changed.value = True
        for key in _TASK_ID_KEYS:
            if isinstance(value.get(key), str) and len(value[key]) <= _MAX_ID:
                value[key] = self.seal(_TASK, value[key])
                changed.value = True
        for key in _REFERENCE_KEYS:
            refs = value.get(key)
            if isinstance(refs, list):
                value[key] = [self.seal(_TASK, r) if isinstance(r, str) and len(r) <= _MAX_ID
                              else r for r in refs]
                changed.value = True
        for nested in _children(value):
            self._seal_object(nested, changed, depth + 1)

    def seal_json(self, data: bytes) -> bytes:
        """A JSON answer body with its task ids sealed (as it came when it is no JSON or
        holds none)."""
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return data
        if not self.seal_answer(value):
            return data
        return json.dumps(value, separators=(",", ":")).encode()

    def seal_event(self, event: bytes) -> bytes:
        """One SSE event (through its blank line) with the task ids of its data sealed."""
        return _rewrite_event_data(event, self.seal_answer)


def seal_json_answer(data: bytes) -> bytes:
    """``data`` (a buffered JSON answer) with its A2A task ids sealed for the request being
    answered (:data:`current`); as it came for other protocols."""
    binding = current.get()
    if binding is None or binding.protocol != "a2a":
        return data
    return binding.seal_json(data)


def seal_event_answer(event: bytes) -> bytes:
    """One SSE event of an answer, its A2A task ids sealed (as :func:`seal_json_answer`)."""
    binding = current.get()
    if binding is None or binding.protocol != "a2a":
        return event
    return binding.seal_event(event)


def _children(value: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in _NESTED:
        nested = value.get(key)
        if isinstance(nested, dict):
            yield nested
    for key in _NESTED_LISTS:
        items = value.get(key)
        if isinstance(items, list):
            yield from (item for item in items if isinstance(item, dict))


def _rewrite_event_data(event: bytes, change: Callable[[Any], bool]) -> bytes:
    """``event`` with its ``data`` re-encoded after ``change`` (in place, True when it
    changed something); the other fields kept."""
    lines = event.decode("utf-8", "surrogateescape").splitlines()
    data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
    if not data:
        return event
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return event
    if not change(value):
        return event
    others = [line for line in lines if line and not line.startswith("data:")]
    text = "\n".join([*others, "data: " + json.dumps(value, separators=(",", ":"))])
    return (text + "\n\n").encode("utf-8", "surrogateescape")
