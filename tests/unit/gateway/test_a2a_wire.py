"""A2A on the gateway's wire: 1.0 method names decided as their policy actions, the agent
card rewritten to send its reader through the gateway, error codes clear of A2A's own."""

from __future__ import annotations

import json

import pytest

from tabard.gateway import DENIED, UNAVAILABLE
from tabard.gateway.operations import METHOD_NOT_FOUND, a2a_operations
from tabard.gateway.service import _gateway_card

ROUTE = "https://gw.example/a2a/billing"


@pytest.mark.parametrize(("method", "action"), [
    ("SendMessage", "message/send"), ("SendStreamingMessage", "message/stream"),
    ("GetTask", "tasks/get"), ("CancelTask", "tasks/cancel"),
    ("SubscribeToTask", "tasks/resubscribe"),
    ("CreateTaskPushNotificationConfig", "tasks/pushNotificationConfig/set"),
    ("DeleteTaskPushNotificationConfig", "tasks/pushNotificationConfig/set"),
    ("GetTaskPushNotificationConfig", "tasks/pushNotificationConfig/get"),
    ("ListTaskPushNotificationConfigs", "tasks/pushNotificationConfig/get"),
    ("message/send", "message/send"), ("tasks/get", "tasks/get"),
])
def test_a2a_methods_of_both_versions_are_decided_as_their_policy_action(
        method: str, action: str) -> None:
    [op] = a2a_operations([{"jsonrpc": "2.0", "id": 1, "method": method}], "billing")
    assert op.error is None and op.action == action and op.resource == "A2aAgent::billing"
    assert op.label == f"{action} billing"


@pytest.mark.parametrize("method", ["ListTasks", "GetExtendedAgentCard", "tasks/list",
                                    "sendMessage"])
def test_other_a2a_methods_are_not_served(method: str) -> None:
    [op] = a2a_operations([{"jsonrpc": "2.0", "id": 1, "method": method}], "billing")
    assert op.action is None and op.error is not None and op.error[0] == METHOD_NOT_FOUND


def test_the_gateway_error_codes_are_outside_the_reserved_json_rpc_range() -> None:
    # A2A gives -32001..-32009 meanings of its own; -32768..-32000 is reserved
    assert not -32768 <= DENIED <= -32000 and not -32768 <= UNAVAILABLE <= -32000


def test_a_1_0_card_names_the_route_for_json_rpc_and_drops_other_bindings() -> None:
    card = {"name": "billing", "signatures": [{"protected": "x", "signature": "y"}],
            "supportedInterfaces": [
                {"url": "http://10.0.0.5:9000/rpc", "protocolBinding": "JSONRPC",
                 "protocolVersion": "1.0"},
                {"url": "http://10.0.0.5:9000/v1", "protocolBinding": "HTTP+JSON"},
                {"url": "10.0.0.5:9001", "protocolBinding": "GRPC"}]}
    out = json.loads(_gateway_card(json.dumps(card).encode(), ROUTE))
    assert out["supportedInterfaces"] == [{"url": ROUTE, "protocolBinding": "JSONRPC",
                                           "protocolVersion": "1.0"}]
    assert "signatures" not in out and out["name"] == "billing"


def test_a_0_3_card_names_the_route_as_its_url() -> None:
    card = {"name": "billing", "url": "http://10.0.0.5:9000/", "preferredTransport": "GRPC",
            "additionalInterfaces": [{"url": "http://10.0.0.5:9000/", "transport": "JSONRPC"},
                                     {"url": "10.0.0.5:9001", "transport": "GRPC"}]}
    out = json.loads(_gateway_card(json.dumps(card).encode(), ROUTE))
    assert out["url"] == ROUTE and out["preferredTransport"] == "JSONRPC"
    assert out["additionalInterfaces"] == [{"url": ROUTE, "transport": "JSONRPC"}]


def test_a_body_that_is_no_card_passes_as_it_came() -> None:
    assert _gateway_card(b"not json", ROUTE) == b"not json"
    assert _gateway_card(b"[1]", ROUTE) == b"[1]"
