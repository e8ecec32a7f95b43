"""Node attestors: the plugin registry and the join-token attestor (in-memory token store)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from tabard.attestation import (
    JOIN_TOKEN_PREFIX,
    AttestationError,
    AttestedNode,
    ConsumeResult,
    InvalidJoinTokenError,
    JoinTokenAttestor,
    JoinTokenRecord,
    JoinTokens,
    NodeAttestors,
    UnknownAttestorError,
    join_token_digest,
)
from tabard.clock import FakeClock
from tabard.errors import Conflict, Invalid


class MemoryTokens:
    """The JoinTokenStore contract in memory, for attestor tests."""

    def __init__(self) -> None:
        self.records: dict[str, JoinTokenRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: JoinTokenRecord) -> None:
        self.records[record.digest] = record

    def consume(self, digest: str, at: datetime) -> ConsumeResult:
        with self._lock:
            record = self.records.get(digest)
            if record is None:
                return ConsumeResult("unknown")
            if record.used_at is not None:
                return ConsumeResult("used", record)
            if record.expires_at <= at:
                return ConsumeResult("expired", record)
            used = replace(record, used_at=at)
            self.records[digest] = used
            return ConsumeResult("consumed", used)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_generated_tokens_are_random_shown_once_and_stored_as_digest(clock: FakeClock) -> None:
    store = MemoryTokens()
    issued = JoinTokens(store, clock).generate()
    assert issued.token.startswith(JOIN_TOKEN_PREFIX)
    assert len(issued.token) - len(JOIN_TOKEN_PREFIX) >= 43  # 256 bits, base64url
    assert issued.token not in repr(issued)
    record = store.records[join_token_digest(issued.token)]
    assert record == issued.record and issued.token not in repr(record)
    assert record.expires_at == clock.now() + timedelta(minutes=10)
    assert JoinTokens(store, clock).generate().token != issued.token


def test_token_ttl_must_be_positive_and_bounded(clock: FakeClock) -> None:
    tokens = JoinTokens(MemoryTokens(), clock)
    assert tokens.generate(timedelta(hours=2)).record.expires_at == clock.now() + timedelta(
        hours=2)
    for bad in (timedelta(0), timedelta(seconds=-1), timedelta(days=31)):
        with pytest.raises(Invalid):
            tokens.generate(bad)


def test_join_token_attestor_admits_once(clock: FakeClock) -> None:
    store = MemoryTokens()
    issued = JoinTokens(store, clock).generate()
    attestor = JoinTokenAttestor(store, clock)
    assert attestor.name == "join_token"
    attested = attestor.attest({"join_token": issued.token})
    assert attested == AttestedNode("join_token", (f"join_token:{issued.record.id}",))
    with pytest.raises(InvalidJoinTokenError) as info:
        attestor.attest({"join_token": issued.token})
    assert info.value.reason == "used" and "already used" in str(info.value)
    assert info.value.code == "invalid_join_token" and issued.token not in str(info.value)


def test_join_token_attestor_refuses_expired_unknown_and_malformed(clock: FakeClock) -> None:
    store = MemoryTokens()
    issued = JoinTokens(store, clock).generate(timedelta(minutes=1))
    attestor = JoinTokenAttestor(store, clock)
    clock.advance(timedelta(minutes=1))
    cases: list[tuple[Mapping[str, Any], str]] = [
        ({"join_token": issued.token}, "expired"),
        ({"join_token": JOIN_TOKEN_PREFIX + "nope"}, "unknown"),
        ({}, "unknown"),
        ({"join_token": 42}, "unknown"),
        ({"join_token": "x" * 300}, "unknown"),
    ]
    for payload, reason in cases:
        with pytest.raises(InvalidJoinTokenError) as info:
            attestor.attest(payload)
        assert info.value.reason == reason


class Fixed:
    """A stand-in plugin: answers with whatever it is given."""

    def __init__(self, name: str, answer: AttestedNode) -> None:
        self._name, self._answer = name, answer

    @property
    def name(self) -> str:
        return self._name

    def attest(self, payload: Mapping[str, Any]) -> AttestedNode:
        if payload.get("proof") != "ok":
            raise AttestationError("bad proof")
        return self._answer


def test_attestors_are_found_by_name(clock: FakeClock) -> None:
    pop = Fixed("x509pop", AttestedNode("x509pop", ("x509pop:subject:cn:h1",), "fp-1"))
    registry = NodeAttestors([JoinTokenAttestor(MemoryTokens(), clock), pop])
    assert registry.names() == ("join_token", "x509pop")
    assert registry.get("x509pop") is pop
    assert registry.attest("x509pop", {"proof": "ok"}).attestation_key == "fp-1"
    with pytest.raises(AttestationError):
        registry.attest("x509pop", {"proof": "forged"})
    with pytest.raises(UnknownAttestorError) as info:
        registry.get("tpm")
    assert "join_token, x509pop" in str(info.value)
    with pytest.raises(Conflict):
        registry.register(Fixed("x509pop", AttestedNode("x509pop", ())))


def test_an_attestor_cannot_answer_for_another() -> None:
    liar = Fixed("aws_iid", AttestedNode("join_token", ("join_token:x",)))
    with pytest.raises(AttestationError):
        NodeAttestors([liar]).attest("aws_iid", {"proof": "ok"})
