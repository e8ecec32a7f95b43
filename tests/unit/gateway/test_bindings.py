"""Sealed session and task ids (tabard.gateway.bindings): bound to route, kind, instance
and user; shared by replicas through the KEK; answers and requests rewritten in place."""

from __future__ import annotations

import json

import pytest

from tabard.gateway.bindings import Binding, IdSealer, UnknownIdError

ALICE7 = {"route": "echo", "instance": "spiffe://td/agent/a/instance/7", "user": "alice"}


def _binding(sealer: IdSealer, protocol: str = "a2a", **over: str | None) -> Binding:
    return Binding(sealer, protocol=protocol, **{**ALICE7, **over})  # type: ignore[arg-type]


def test_replicas_deriving_from_one_kek_open_each_others_ids_and_no_one_else_does() -> None:
    one, two = IdSealer.from_kek(b"k" * 32), IdSealer.from_kek(b"k" * 32)
    sealed = _binding(one).seal("a2a-task", "task-1")
    assert sealed.startswith("tb1") and sealed == sealed.lower() and "-" not in sealed
    assert _binding(two).open("a2a-task", sealed) == "task-1"
    assert _binding(one).seal("a2a-task", "task-1") == sealed  # deterministic
    with pytest.raises(UnknownIdError):
        _binding(IdSealer.from_kek(b"x" * 32)).open("a2a-task", sealed)


@pytest.mark.parametrize("other", [{"user": "bob"}, {"user": None},
                                   {"instance": "spiffe://td/agent/a/instance/8"},
                                   {"route": "echo2"}])
def test_an_id_opens_only_for_the_route_instance_and_user_it_was_sealed_for(
        other: dict[str, str | None]) -> None:
    sealer = IdSealer.ephemeral()
    sealed = _binding(sealer).seal("a2a-task", "task-1")
    with pytest.raises(UnknownIdError):
        _binding(sealer, **other).open("a2a-task", sealed)
    with pytest.raises(UnknownIdError):  # nor as another kind of id
        _binding(sealer).open("mcp-session", sealed)
    for junk in ("task-1", "tb1", "tb1!!", "tb1" + "a" * 5000):
        with pytest.raises(UnknownIdError):
            _binding(sealer).open("a2a-task", junk)


def test_mcp_session_header_is_sealed_out_and_opened_in() -> None:
    sealer = IdSealer.ephemeral()
    answer = {"mcp-session-id": "up-1", "content-type": "application/json"}
    _binding(sealer, "mcp").seal_session_header(answer)
    assert answer["mcp-session-id"].startswith("tb1")
    binding = _binding(sealer, "mcp")
    binding.check_session(answer["mcp-session-id"])
    upstream = {"Mcp-Session-Id": answer["mcp-session-id"], "accept": "*/*"}
    binding.to_upstream(upstream)
    assert upstream == {"accept": "*/*", "mcp-session-id": "up-1"}
    with pytest.raises(UnknownIdError):
        _binding(sealer, "mcp", user="bob").check_session(answer["mcp-session-id"])


def test_a2a_answers_of_both_versions_have_every_task_id_sealed() -> None:
    sealer = IdSealer.ephemeral()
    binding = _binding(sealer)
    task = {"id": "t1", "contextId": "c1", "status": {"state": "working", "message": {
        "messageId": "m1", "taskId": "t1"}}, "history": [{"messageId": "m0", "taskId": "t1",
                                                           "referenceTaskIds": ["t0"]}]}
    v1 = {"jsonrpc": "2.0", "id": 1, "result": {"task": json.loads(json.dumps(task))}}
    v03 = {"jsonrpc": "2.0", "id": 1, "result": {**json.loads(json.dumps(task)),
                                                 "kind": "task"}}
    event = {"jsonrpc": "2.0", "id": 1, "result": {"statusUpdate": {
        "taskId": "t1", "contextId": "c1", "status": {"state": "completed"}}}}
    configs = {"jsonrpc": "2.0", "id": 1, "result": {"configs": [
        {"id": "cfg", "taskId": "t1", "url": "https://hook"}]}}
    s = binding.seal("a2a-task", "t1")
    out = json.loads(binding.seal_json(json.dumps(v1).encode()))["result"]["task"]
    assert out["id"] == s and out["status"]["message"]["taskId"] == s
    assert out["history"][0]["taskId"] == s
    assert out["history"][0]["referenceTaskIds"] == [binding.seal("a2a-task", "t0")]
    assert out["status"]["message"]["messageId"] == "m1" and out["contextId"] == "c1"
    assert json.loads(binding.seal_json(json.dumps(v03).encode()))["result"]["id"] == s
    raw = b"event: message\ndata: " + json.dumps(event).encode() + b"\n\n"
    sealed = binding.seal_event(raw)
    assert sealed.endswith(b"\n\n") and sealed.startswith(b"event: message\n")
    data = json.loads(sealed.split(b"data: ", 1)[1])
    assert data["result"]["statusUpdate"]["taskId"] == s
    out = json.loads(binding.seal_json(json.dumps(configs).encode()))["result"]["configs"][0]
    assert out == {"id": "cfg", "taskId": s, "url": "https://hook"}  # the config id kept
    error = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}})
    assert binding.seal_json(error.encode()) == error.encode()


def test_a2a_requests_get_the_upstream_ids_back_or_are_refused() -> None:
    sealer = IdSealer.ephemeral()
    binding = _binding(sealer)
    s = binding.seal("a2a-task", "t1")
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": s}},
        {"jsonrpc": "2.0", "id": 2, "method": "tasks/pushNotificationConfig/set",
         "params": {"taskId": s, "pushNotificationConfig": {"id": "c", "url": "u"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "SendMessage", "params": {"message": {
            "messageId": "m", "taskId": s, "referenceTaskIds": [s]}}},
        {"jsonrpc": "2.0", "id": 4, "method": "GetTaskPushNotificationConfig",
         "params": {"taskId": s, "id": "cfg"}},
    ]
    refused, changed = binding.open_requests(messages)
    assert not refused and changed
    assert messages[0]["params"]["id"] == "t1" and messages[1]["params"]["taskId"] == "t1"
    assert messages[2]["params"]["message"] == {"messageId": "m", "taskId": "t1",
                                                "referenceTaskIds": ["t1"]}
    assert messages[3]["params"] == {"taskId": "t1", "id": "cfg"}  # the config id kept
    foreign = [{"jsonrpc": "2.0", "id": 9, "method": "CancelTask", "params": {"id": s}},
               {"jsonrpc": "2.0", "id": 10, "method": "GetTask", "params": {"id": 7}},
               {"jsonrpc": "2.0", "id": 11, "method": "SendMessage",
                "params": {"message": {"messageId": "m"}}}]
    refused, changed = _binding(sealer, user="bob").open_requests(foreign)
    assert [r.rpc_id for r in refused] == [9, 10] and not changed
