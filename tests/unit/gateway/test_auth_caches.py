"""The gateway's authentication uses the process's verified-SVID caches, and its cheap
issuer peek picks the verifier without changing what is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import tabard.spiffe.jwtsvid as jwtsvid
from tabard.authority import Authority, MemoryKeyManager
from tabard.clock import FakeClock
from tabard.gateway.auth import (
    AgentIdentity,
    authenticate_agent,
    establish_user,
)
from tabard.gateway.errors import UserTokenError
from tabard.spiffe import JwtSvidCache, SpiffeId, TrustDomain, X509SvidCache
from tests.fakes.authority_store import InMemoryAuthorityStore

INSTANCE = SpiffeId.parse("spiffe://example.org/agent/a/instance/1")
GATEWAY = "https://gateway.example.org"


CLOCK = FakeClock()


@pytest.fixture
def authority() -> Authority:
    a = Authority(TrustDomain("example.org"), MemoryKeyManager(), InMemoryAuthorityStore(),
                  CLOCK)
    a.ensure_initialized()
    return a


def test_jwt_svids_and_client_certificates_are_verified_once(
        authority: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = jwtsvid._verify
    monkeypatch.setattr(jwtsvid, "_verify",
                        lambda token, *a: (calls.append(token), real(token, *a))[1])
    svids, certs, now = JwtSvidCache(), X509SvidCache(), CLOCK.timestamp()
    token = authority.mint_jwt_svid(INSTANCE, GATEWAY)
    for _ in range(3):
        found = authenticate_agent(tls_chain=(), agent_token=token, bundle=authority.bundle,
                                   audience=GATEWAY, now=now, svids=svids)
        assert (found.agent, found.method) == ("a", "jwt-svid")
    assert len(calls) == 1
    chain = [c.public_bytes(Encoding.DER) for c in authority.mint_x509_svid(INSTANCE).chain]
    for _ in range(2):
        found = authenticate_agent(tls_chain=chain, agent_token=None, bundle=authority.bundle,
                                   audience=GATEWAY, now=now, certs=certs)
        assert found.method == "x509-svid" and found.thumbprint
    assert len(certs) == 1


class Verifier:
    issuer = "https://as.example.org"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def verify_access_token(self, token: str) -> dict[str, Any]:
        self.asked.append("access")
        return {"sub": "alice", "aud": "r", "act": {"sub": str(INSTANCE)}}

    def verify_user_token(self, token: str, audiences: Sequence[str]) -> dict[str, Any]:
        self.asked.append("user")
        return {"sub": "alice", "aud": "r"}


def jwt_with(claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return f"{b64(b'{}')}.{b64(json.dumps(claims).encode())}.sig"


def test_the_issuer_picks_the_verifier() -> None:
    agent = AgentIdentity(str(INSTANCE), "a", "jwt-svid")
    verifier = Verifier()
    own = establish_user(f"Bearer {jwt_with({'iss': Verifier.issuer})}", agent,
                         verifier=verifier, audience="r")
    foreign = establish_user(f"Bearer {jwt_with({'iss': 'https://idp.example'})}", agent,
                             verifier=verifier, audience="r",
                             user_issuers=("https://idp.example",))
    assert (own.token_kind, foreign.token_kind) == ("delegated", "user")
    assert verifier.asked == ["access", "user"]
    with pytest.raises(UserTokenError, match="not a JWT"):
        establish_user("Bearer not-a-jwt", agent, verifier=verifier, audience="r")
