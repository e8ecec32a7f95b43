"""A2A push-notification webhook URLs (tabard.gateway.pushurls) and dual-token checks
(tabard.gateway.auth.check_dual_token), on plain values."""

from __future__ import annotations

from typing import Any

import pytest

from tabard.gateway.auth import AgentIdentity, check_dual_token
from tabard.gateway.errors import UserTokenError
from tabard.gateway.pushurls import push_url_problem, push_urls_of

ALLOWED = ("https://hooks.example.com/a2a/", "https://events.example.org:8443/in")


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/a2a/task-1", "https://hooks.example.com/a2a/",
    "https://HOOKS.example.com/a2a/x?token=1", "https://events.example.org:8443/in",
    "https://events.example.org:8443/in/deep",
])
def test_webhooks_under_the_routes_prefixes_pass(url: str) -> None:
    assert push_url_problem(url, ALLOWED) is None


@pytest.mark.parametrize(("url", "why"), [
    ("http://hooks.example.com/a2a/x", "https://"),
    ("https://hooks.example.com/other", "not under"),
    ("https://hooks.example.com.evil.example/a2a/x", "not under"),
    ("https://events.example.org:8443/inbox", "not under"),  # a prefix ends at a segment
    ("https://events.example.org/in", "not under"),  # another port
    ("https://hooks.example.com/a2a/../admin", "'..'"),
    ("https://hooks.example.com/a2a/%2E%2e/admin", "'..'"),
    ("https://hooks.example.com/a2a/x\\y", "backslash"),
    ("https://hooks.example.com/a2a/..%2Fadmin", "encoded"),
    ("https://hooks.example.com/a2a/x%5cy", "encoded"),
    ("https://user@hooks.example.com/a2a/x", "user information"),
    ("https://hooks.example.com/a2a/x#f", "fragment"),
    ("https://127.0.0.1/a2a/", "loopback"), ("https://127.1/a2a/", "loopback"),
    ("https://2130706433/a2a/", "loopback"), ("https://0x7f.1/a2a/", "loopback"),
    ("https://10.1.2.3/", "private"), ("https://169.254.169.254/latest/", "link-local"),
    ("https://[::1]/", "loopback"), ("https://[::ffff:10.0.0.1]/", "private"),
    ("https://[fd00::1]/", "private"), ("https://0.0.0.0/", "reserved"),
    ("https://localhost/a2a/", "local name"), ("https://metadata/", "local name"),
    ("https://db.internal/", "local name"), ("https://printer.local/", "local name"),
    ("https://hooks.example.com:99999/", "not a valid URL"),
    ("https://hooks.example.com/a2a/é", "printable ASCII"),
    (7, "string"), ("", "string"),
])
def test_webhooks_that_could_reach_inside_or_elsewhere_are_refused(url: Any, why: str) -> None:
    problem = push_url_problem(url, ALLOWED)
    assert problem is not None and why in problem


def test_a_route_without_push_urls_accepts_no_webhook() -> None:
    problem = push_url_problem("https://hooks.example.com/a2a/x", ())
    assert problem is not None and "push_urls are empty" in problem


def test_the_webhook_urls_of_each_a2a_version_are_found_but_not_file_parts() -> None:
    message = {"messageId": "m", "parts": [{"url": "https://files.example/f.pdf"}],
               "metadata": {"url": "https://meta.example/"}}
    assert push_urls_of("CreateTaskPushNotificationConfig",
                        {"taskId": "t", "url": "https://a/"}) == ["https://a/"]
    assert push_urls_of("tasks/pushNotificationConfig/set", {
        "taskId": "t", "pushNotificationConfig": {"url": "https://b/"}}) == ["https://b/"]
    assert push_urls_of("SendMessage", {"message": message, "configuration": {
        "taskPushNotificationConfig": {"url": "https://c/"}}}) == ["https://c/"]
    assert push_urls_of("message/send", {"message": message, "configuration": {
        "pushNotificationConfig": {"url": "https://d/"}}}) == ["https://d/"]
    assert push_urls_of("SendMessage", {"message": message}) == []
    assert push_urls_of("GetTask", {"id": "t", "url": "https://e/"}) == []


AGENT = AgentIdentity("spiffe://td/agent/assistant/instance/7", "assistant", "jwt-svid")


def test_a_users_own_token_needs_an_issuer_the_route_names() -> None:
    check_dual_token({"iss": "https://idp"}, AGENT, ("https://idp",), verified=False)
    for issuers in ((), ("https://other",)):
        with pytest.raises(UserTokenError, match="dual-token mode is off"):
            check_dual_token({"iss": "https://idp"}, AGENT, issuers, verified=False)


@pytest.mark.parametrize(("may_act", "ok"), [
    (None, True), ({"sub": "spiffe://td/agent/assistant"}, True),
    ({"sub": "spiffe://td/agent/assistant/instance/7"}, True),
    ({"sub": "spiffe://td/agent/assistant/instance/8"}, False),
    ({"sub": "spiffe://td/agent/other"}, False), ({"iss": "x"}, False),
    ("spiffe://td/agent/assistant", False), ([{"sub": "spiffe://td/agent/assistant"}], False),
])
def test_may_act_must_name_the_instance_or_its_agent(may_act: Any, ok: bool) -> None:
    claims = {"iss": "https://idp", "sub": "alice"}
    if may_act is not None:
        claims["may_act"] = may_act
    if ok:
        check_dual_token(claims, AGENT, ("https://idp",), verified=True)
    else:
        with pytest.raises(UserTokenError, match="may_act"):
            check_dual_token(claims, AGENT, ("https://idp",), verified=True)


def test_a_jsonrpc_body_naming_a_member_twice_is_refused() -> None:
    from tabard.gateway.operations import PARSE_ERROR, JsonRpcParseError, parse_jsonrpc

    body = (b'{"jsonrpc":"2.0","id":1,"method":"tasks/pushNotificationConfig/set",'
            b'"params":{"url":"https://hooks.example.com/a2a/x",'
            b'"url":"https://10.0.0.1/"}}')
    with pytest.raises(JsonRpcParseError) as refused:
        parse_jsonrpc(body)
    assert refused.value.code == PARSE_ERROR and "twice" in refused.value.message
    assert parse_jsonrpc(body.replace(b',"url":"https://10.0.0.1/"', b""))[1] is False
