"""An authorization server in process: memory keys and stores, a fake clock, fake agents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.authority import Authority, MemoryKeyManager
from tabard.clock import FakeClock
from tabard.oauth import (
    ASSERTION_JWT_SPIFFE,
    GRANT_TOKEN_EXCHANGE,
    TOKEN_TYPE_JWT,
    AuthorizationServer,
    SigningKeys,
    TrustedIssuer,
)
from tabard.oauth.jwts import key_resolver_for
from tabard.spiffe import SpiffeId, TrustDomain
from tests.fakes.authority_store import InMemoryAuthorityStore
from tests.fakes.oauth import FakeAgents, FakeUsers, InMemoryClientStore, InMemoryTokenStore

ISSUER = "https://as.example.org"
RESOURCE = "https://mcp.example.org/tools"
TD = TrustDomain("example.org")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IDP = "https://idp.example.net"


def instance(agent: str, n: str = "1") -> SpiffeId:
    return SpiffeId.parse(f"spiffe://example.org/agent/{agent}/instance/{n}")


def agent_id(agent: str) -> str:
    """The agent's SPIFFE ID: the ``resource`` that delegates a token to any instance of it."""
    return f"spiffe://example.org/agent/{agent}"


@dataclass
class World:
    clock: FakeClock
    authority: Authority
    server: AuthorizationServer
    tokens: InMemoryTokenStore
    clients: InMemoryClientStore
    agents: FakeAgents
    users: FakeUsers
    idp_key: ec.EllipticCurvePrivateKey

    def svid(self, who: SpiffeId, audience: str | Sequence[str] = ISSUER) -> str:
        return self.authority.mint_jwt_svid(who, audience)

    def user_token(self, user: str = "alice", scope: str | None = None) -> str:
        return self.server.mint_user_token(user, scope=scope)

    def idp_token(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        now = int(self.clock.timestamp())
        full = {"iss": IDP, "iat": now, "exp": now + 300, "jti": f"j{now}", **claims}
        return jwt.encode(full, self.idp_key, algorithm="ES256",
                          headers={"kid": "idp-1", "typ": typ})

    def exchange(self, subject_token: str, actor: SpiffeId, *, scope: str | None = None,
                 resource: str | Sequence[str] | None = RESOURCE, actor_token: bool = True,
                 **extra: str) -> dict[str, Any]:
        form: dict[str, list[str]] = {
            "grant_type": [GRANT_TOKEN_EXCHANGE],
            "subject_token": [subject_token],
            "subject_token_type": [TOKEN_TYPE_JWT],
            "client_assertion_type": [ASSERTION_JWT_SPIFFE],
            "client_assertion": [self.svid(actor)],
        }
        if actor_token:
            form["actor_token"] = [self.svid(actor)]
            form["actor_token_type"] = [TOKEN_TYPE_JWT]
        if scope is not None:
            form["scope"] = [scope]
        if resource is not None:
            form["resource"] = [resource] if isinstance(resource, str) else list(resource)
        if "actor_token_value" in extra:
            form["actor_token"] = [extra.pop("actor_token_value")]
            form["actor_token_type"] = [TOKEN_TYPE_JWT]
        for key, value in extra.items():
            form[key] = [value]
        return self.server.token(form)

    def claims(self, token: str) -> dict[str, Any]:
        return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def world() -> World:
    clock = FakeClock(START)
    km = MemoryKeyManager()
    authority = Authority(TD, km, InMemoryAuthorityStore(), clock)
    authority.ensure_initialized()
    tokens, clients, agents = InMemoryTokenStore(), InMemoryClientStore(), FakeAgents()
    users = FakeUsers(alice=True, bob=True, carol=False)
    for name in ("helper", "sub", "subsub", "fourth", "fifth"):
        agents.add(name)
    agents.add("cron", delegation="agent_as_principal")
    idp_key = ec.generate_private_key(ec.SECP256R1())
    idp_public = idp_key.public_key()

    def idp_keys(kid: str) -> tuple[Any, str] | None:
        return (idp_public, "ES256") if kid == "idp-1" else None

    server = AuthorizationServer(
        bundle=authority.bundle, keys=SigningKeys(km, "oauth-as", clock), tokens=tokens,
        clients=clients, agents=agents, users=users, clock=clock,
        access_token_ttl=timedelta(minutes=5), max_chain_depth=3,
        trusted_issuers=[TrustedIssuer(IDP, key_resolver_for(idp_keys), (ISSUER,))],
        demo_keys=SigningKeys(km, "oauth-demo", clock), issuer=ISSUER,
    )
    return World(clock, authority, server, tokens, clients, agents, users, idp_key)
