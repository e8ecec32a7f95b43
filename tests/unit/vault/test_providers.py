"""Credential providers: static injection, client credentials against a token endpoint,
minted downstream JWTs verified against the signer's JWKS; each issue a lease."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.clock import FakeClock
from tabard.policy import Scope
from tabard.store import Database, SqlLeaseStore, SqlSecretStore
from tabard.vault import (
    ClientCredentialsProvider,
    CredentialContext,
    CredentialUnavailableError,
    DownstreamJwtProvider,
    EnvelopeCipher,
    LeaseQuery,
    Leases,
    ProviderConfigError,
    ProviderKind,
    StaticSecretProvider,
    Vault,
)

AGENT = "spiffe://demo.example/agent/assistant/instance/01J0000000000000000000000A"
PARENT = "spiffe://demo.example/agent/planner/instance/01J0000000000000000000000B"


@pytest.fixture
def vault(db: Database, clock: FakeClock) -> Vault:
    return Vault(SqlSecretStore(db), EnvelopeCipher(b"unit-test-kek-0123"), clock)


@pytest.fixture
def leases(db: Database, clock: FakeClock) -> Leases:
    return Leases(SqlLeaseStore(db), clock)


def context(**fields: Any) -> CredentialContext:
    values: dict[str, Any] = {"route": "demo-tools", "upstream": "https://tools.example",
                              "agent": "assistant", "agent_instance": AGENT, "user": "alice"}
    values.update(fields)
    return CredentialContext(**values)


def test_static_bearer_then_rotation_then_custom_header(
        vault: Vault, leases: Leases, clock: FakeClock) -> None:
    vault.put("jira", b"jira-token-1")
    provider = StaticSecretProvider(vault, leases, clock, secret="jira")
    first = provider.issue(context())
    assert first.headers == {"Authorization": "Bearer jira-token-1"}
    assert first.expires_at == clock.now() + timedelta(seconds=60)
    assert "jira-token-1" not in repr(first)
    vault.rotate("jira", b"jira-token-2\n")  # a line break can never reach a header
    with pytest.raises(ProviderConfigError, match="line break"):
        provider.issue(context())
    vault.rotate("jira", b"jira-token-3")
    second = provider.issue(context(user="bob"))
    assert second.headers["Authorization"] == "Bearer jira-token-3"
    lease = leases.get(second.lease_id)
    assert (lease.provider, lease.secret_name, lease.secret_version, lease.user, lease.route) \
        == (ProviderKind.STATIC, "jira", 3, "bob", "demo-tools")
    assert leases.get(first.lease_id).secret_version == 1
    api_key = StaticSecretProvider(vault, leases, clock, secret="jira", header="X-Api-Key",
                                   scheme="")
    assert api_key.issue(context()).headers == {"X-Api-Key": "jira-token-3"}
    with pytest.raises(ProviderConfigError):
        StaticSecretProvider(vault, leases, clock, secret="jira", header="Bad Header")


class TokenEndpoint:
    """A token endpoint on httpx's mock transport: counts requests, answers per scope."""

    def __init__(self, *, status: int = 200, body: Mapping[str, Any] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.body = status, body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        form = parse_qs(request.content.decode())
        body = self.body if self.body is not None else {
            "access_token": f"at-{len(self.requests)}-{form.get('scope', [''])[0]}",
            "token_type": "bearer", "expires_in": 300}
        return httpx.Response(self.status, json=body)

    def form(self, index: int) -> dict[str, list[str]]:
        return parse_qs(self.requests[index].content.decode())


def cc_provider(vault: Vault, leases: Leases, clock: FakeClock, endpoint: TokenEndpoint,
                **options: Any) -> ClientCredentialsProvider:
    vault.put("gh-client-id", b"client:one")
    vault.put("gh-client-secret", b"s3cret/with+chars")
    return ClientCredentialsProvider(
        vault, leases, clock, token_url="https://idp.example/token",
        client_id_secret="gh-client-id", client_secret_secret="gh-client-secret",
        scopes={"tools:github.read_*": "repo:read", "tools:github.*": "repo"},
        default_scope="read:user", http=httpx.Client(transport=httpx.MockTransport(endpoint)),
        **options)


def test_client_credentials_narrowest_scope_cached_per_scope(
        vault: Vault, leases: Leases, clock: FakeClock) -> None:
    endpoint = TokenEndpoint()
    provider = cc_provider(vault, leases, clock, endpoint)
    read = provider.issue(context(operation="tools:github.read_repo"))
    assert read.headers == {"Authorization": "Bearer at-1-repo:read"}
    request = endpoint.requests[0]
    user, _, password = base64.b64decode(
        request.headers["authorization"].removeprefix("Basic ")).decode().partition(":")
    assert (user, password) == ("client%3Aone", "s3cret%2Fwith%2Bchars")  # RFC 6749 §2.3.1
    assert endpoint.form(0) == {"grant_type": ["client_credentials"], "scope": ["repo:read"]}
    again = provider.issue(context(operation="tools:github.read_issue"))
    assert again.headers == read.headers and len(endpoint.requests) == 1
    assert again.lease_id != read.lease_id
    write = provider.issue(context(operation="tools:github.create_pr"))
    assert write.headers["Authorization"] == "Bearer at-2-repo"
    assert provider.issue(context()).headers["Authorization"] == "Bearer at-3-read:user"
    assert len(leases.list(LeaseQuery(secret_name="gh-client-secret"))) == 4
    clock.advance(timedelta(seconds=300 - 31))  # 31 s left: still cached
    assert provider.issue(context(operation="tools:github.read_repo")).headers == read.headers
    clock.advance(timedelta(seconds=2))  # 29 s left, inside the 30 s margin: fetched anew
    assert provider.issue(context(operation="tools:github.read_repo")).headers[
        "Authorization"] == "Bearer at-4-repo:read"
    lease = leases.get(read.lease_id)
    assert lease.provider is ProviderKind.CLIENT_CREDENTIALS and lease.secret_version == 1


def test_client_credentials_post_auth_and_refusals(
        vault: Vault, leases: Leases, clock: FakeClock) -> None:
    endpoint = TokenEndpoint(status=401, body={"error": "invalid_client",
                                               "error_description": "bad secret s3cret"})
    provider = cc_provider(vault, leases, clock, endpoint, auth_method="client_secret_post",
                           resource="https://api.github.example")
    with pytest.raises(CredentialUnavailableError) as caught:
        provider.issue(context())
    assert "invalid_client" in str(caught.value) and "s3cret" not in str(caught.value)
    assert endpoint.form(0)["client_secret"] == ["s3cret/with+chars"]
    assert endpoint.form(0)["resource"] == ["https://api.github.example"]
    assert "authorization" not in endpoint.requests[0].headers
    assert leases.list(LeaseQuery()) == []
    endpoint.status, endpoint.body = 200, {"token_type": "bearer"}
    with pytest.raises(CredentialUnavailableError, match="without a usable access_token"):
        provider.issue(context())

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    provider._http = httpx.Client(transport=httpx.MockTransport(unreachable))
    with pytest.raises(CredentialUnavailableError, match="cannot be reached"):
        provider.issue(context())


class KeySigner:
    """A real ES256 signer over a fresh key, publishing its JWKS (as the AS will)."""

    issuer = "https://tabard.demo.example"

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "downstream-1"

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._key, algorithm="ES256",
                          headers={"kid": self.kid, "typ": "JWT"})

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}]}


def test_downstream_jwt_verifies_against_the_jwks(leases: Leases, clock: FakeClock) -> None:
    signer = KeySigner()
    provider = DownstreamJwtProvider(signer, leases, clock)
    credential = provider.issue(context(chain=[AGENT, PARENT],
                                        scope=Scope.parse("tools:jira.* tools:github.read_repo")))
    token = credential.headers["Authorization"].removeprefix("Bearer ")
    key = jwt.PyJWKSet.from_dict(signer.jwks())[signer.kid]
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="https://tools.example",
                        issuer=signer.issuer, options={"verify_exp": False})
    now = int(clock.now().timestamp())
    assert claims["sub"] == "alice" and claims["iat"] == now and claims["exp"] == now + 60
    assert claims["act"] == {"sub": AGENT, "act": {"sub": PARENT}}
    assert claims["scope"] == "tools:github.read_repo tools:jira.*"
    assert claims["jti"] == credential.lease_id
    lease = leases.get(credential.lease_id)
    assert lease.provider is ProviderKind.DOWNSTREAM_JWT and lease.secret_name is None
    assert lease.expires_at == credential.expires_at == clock.now() + timedelta(seconds=60)
    second = provider.issue(context())
    claims2 = jwt.decode(second.headers["Authorization"][7:], key.key, algorithms=["ES256"],
                         audience="https://tools.example", options={"verify_exp": False})
    assert claims2["jti"] != claims["jti"] and claims2["act"] == {"sub": AGENT}
    assert "scope" not in claims2
    alone = provider.issue(context(user=None))
    claims3 = jwt.decode(alone.headers["Authorization"][7:], key.key, algorithms=["ES256"],
                         audience="https://tools.example", options={"verify_exp": False})
    assert claims3["sub"] == AGENT and "act" not in claims3
    with pytest.raises(ProviderConfigError):
        DownstreamJwtProvider(signer, leases, clock, ttl=timedelta(seconds=61))
    with pytest.raises(ProviderConfigError):
        provider.issue(context(user=None, agent_instance=None))


def test_issue_now_answers_only_from_memory(db: Database, clock: FakeClock) -> None:
    """On the gateway's event loop a credential is issued in place only when neither the
    database nor the network is needed; otherwise ``issue_now`` says so (None)."""
    cached = Vault(SqlSecretStore(db), EnvelopeCipher(b"unit-test-kek-0123"), clock,
                   reveal_ttl=timedelta(seconds=5))
    cached.put("demo-upstream-key", b"s3cr3t-value")
    queued = Leases(SqlLeaseStore(db), clock, write_behind=timedelta(milliseconds=5))
    static = StaticSecretProvider(cached, queued, clock, secret="demo-upstream-key")
    assert static.issue_now(context()) is None  # not revealed yet: that reads the store
    first = static.issue(context())
    now = static.issue_now(context())
    assert now is not None and now.headers == first.headers == {
        "Authorization": "Bearer s3cr3t-value"}
    clock.advance(timedelta(seconds=6))
    assert static.issue_now(context()) is None  # the reveal is older than its TTL
    # leases inserted one by one (no write-behind) would wait on the database
    synchronous = StaticSecretProvider(cached, Leases(SqlLeaseStore(db), clock),
                                       secret="demo-upstream-key", clock=clock)
    synchronous.issue(context())
    assert synchronous.issue_now(context()) is None
    jwt_provider = DownstreamJwtProvider(KeySigner(), queued, clock)
    minted = jwt_provider.issue_now(context())
    assert minted is not None and minted.headers["Authorization"].startswith("Bearer ")
    assert queued.flush(10) and queued.get(minted.lease_id).provider is (
        ProviderKind.DOWNSTREAM_JWT)
    queued.close()


def test_client_credentials_issue_now_only_from_a_cached_token(
        vault: Vault, db: Database, clock: FakeClock) -> None:
    endpoint = TokenEndpoint()
    queued = Leases(SqlLeaseStore(db), clock, write_behind=timedelta(milliseconds=5))
    provider = cc_provider(vault, queued, clock, endpoint)
    read = context(operation="tools:github.read_repo")
    assert provider.issue_now(read) is None and not endpoint.requests  # needs the network
    fetched = provider.issue(read)
    now = provider.issue_now(read)
    assert now is not None and now.headers == fetched.headers and len(endpoint.requests) == 1
    assert provider.issue_now(context(operation="tools:github.create_pr")) is None  # other scope
    clock.advance(timedelta(seconds=300 - 29))  # inside the refresh margin
    assert provider.issue_now(read) is None
    queued.close()
