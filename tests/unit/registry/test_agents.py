"""Agent definition values: names, tools, digests, config, hooks, and the agent checksum."""

from __future__ import annotations

import hashlib
import json

import pytest
import rfc8785

from tabard.registry import (
    AgentState,
    HookKind,
    InvalidAgentError,
    ModelRef,
    SanitizationHook,
    StepName,
    Tier,
    agent_checksum,
    agent_of,
)
from tabard.registry.agents import (
    normalize_digest,
    validate_config,
    validate_name,
    validate_tools,
)


def test_checksum_is_sha256_over_rfc8785_of_prompt_digest_sorted_tools_and_config() -> None:
    config = {"temperature": 0.5, "limits": {"orders": 10, "b": [1, 2]}}
    expected = hashlib.sha256(
        b'{"config":{"limits":{"b":[1,2],"orders":10},"temperature":0.5},'
        b'"system_prompt_digest":"sha256:' + b"aa" * 32 + b'","tools":["a.read","b.write"]}'
    ).hexdigest()
    got = agent_checksum("sha256:" + "aa" * 32, ["b.write", "a.read"], config)
    assert got == expected
    # key order and whitespace of the config given do not matter
    reordered = json.loads('{ "limits": {"orders": 10, "b": [1,2]}, "temperature": 0.5 }')
    assert agent_checksum("sha256:" + "aa" * 32, ["a.read", "b.write"], reordered) == got


def test_checksum_changes_with_each_input_and_knows_null() -> None:
    base = agent_checksum(None, ["t"], None)
    assert base == hashlib.sha256(
        rfc8785.dumps({"config": None, "system_prompt_digest": None, "tools": ["t"]})
    ).hexdigest()
    assert agent_checksum(None, ["t", "u"], None) != base
    assert agent_checksum("sha256:" + "00" * 32, ["t"], None) != base
    assert agent_checksum(None, ["t"], {}) != base
    assert agent_checksum(None, ["t"], {"x": 1}) != agent_checksum(None, ["t"], {"x": 2})


@pytest.mark.parametrize("name", ["a", "trading", "t-1", "0abc", "a" * 63])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "Trading", "a_b", "a/b", "a" * 64, "a b", 5])
def test_invalid_names(name: object) -> None:
    with pytest.raises(InvalidAgentError):
        validate_name(name)


def test_tools_are_distinct_and_sorted() -> None:
    assert validate_tools(["b", "a", "b", "mcp://github/issues.read"]) == (
        "a", "b", "mcp://github/issues.read")
    for bad in (["has space"], [""], ["-x"], "abc", [1]):
        with pytest.raises(InvalidAgentError):
            validate_tools(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidAgentError, match="at most 256"):
        validate_tools([f"t{i}" for i in range(257)])


def test_digests_are_normalised() -> None:
    hexa = "AB" * 32
    assert normalize_digest("image_digest", hexa) == "sha256:" + "ab" * 32
    assert normalize_digest("image_digest", "sha512:" + "0" * 128) == "sha512:" + "0" * 128
    for bad in ("sha256:xyz", "md5:" + "0" * 32, "", "sha256:" + "0" * 63, None):
        with pytest.raises(InvalidAgentError, match="image_digest"):
            normalize_digest("image_digest", bad)


def test_config_must_be_a_canonicalisable_object() -> None:
    assert validate_config(None) is None
    assert validate_config({"b": 1, "a": [True, None]}) == {"a": [True, None], "b": 1}
    for bad in ([1], "x", {"f": float("nan")}, {"big": 2**60}, {1: "x"}):
        with pytest.raises(InvalidAgentError, match="config"):
            validate_config(bad)
    with pytest.raises(InvalidAgentError, match="limited"):
        validate_config({"x": "y" * 70_000})


def test_model_ref_requires_each_part() -> None:
    assert ModelRef(" anthropic ", "claude", "4").provider == "anthropic"
    with pytest.raises(InvalidAgentError, match="model version"):
        ModelRef("a", "b", "")


def test_hooks_parse_and_refuse_command_lines_and_credentials() -> None:
    assert SanitizationHook.parse("wipe-memory") == SanitizationHook(HookKind.COMMAND,
                                                                     "wipe-memory")
    assert SanitizationHook.parse("https://hooks.example/x").kind is HookKind.WEBHOOK
    assert SanitizationHook.parse("webhook:http://h/x").target == "http://h/x"
    assert SanitizationHook.parse("command:purge.sh").label == "command:purge.sh"
    for bad in ("rm -rf /", "../etc/passwd", "a/b", "command:", "webhook:ftp://x/",
                "https://user:pw@h/x"):
        with pytest.raises(InvalidAgentError):
            SanitizationHook.parse(bad)


def test_agent_of_reads_the_first_two_segments_only() -> None:
    assert agent_of("spiffe://example.org/agent/trading/instance/{instance}") == "trading"
    assert agent_of("spiffe://example.org/agent/trading") == "trading"
    assert agent_of("spiffe://example.org/team/agent/trading") is None
    assert agent_of("spiffe://example.org/agent/{instance}") is None
    assert agent_of("spiffe://example.org/web") is None


def test_state_and_enum_helpers() -> None:
    assert AgentState.ACTIVE.issues_identities
    assert AgentState.PENDING_RECERTIFICATION.issues_identities
    assert not any(s.issues_identities for s in (AgentState.REGISTERED, AgentState.SUSPENDED,
                                                 AgentState.RETIRING, AgentState.RETIRED))
    assert Tier.PROD.rank > Tier.STAGING.rank > Tier.DEV.rank
    assert [s.number for s in StepName] == [1, 2, 3, 4, 5, 6]
