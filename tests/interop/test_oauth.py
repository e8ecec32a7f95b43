"""The authorization server end to end on a running ``tabard dev``: authlib (Python) and
``oauth4webapi`` (Node) do discovery and token exchange, npm ``jose`` verifies the token
against the AS JWKS; a three-hop chain, revocation, mTLS binding and the RFC error codes over
HTTP; ``tabard users token`` refuses outside dev mode."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography import x509

from tests.support.node import run_node_script
from tests.support.platform import DevPlatform
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.interop

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
SPIFFE_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"
RESOURCE = "https://mcp.example.org/tools"
DIGEST = "sha256:" + "a" * 64


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def instance(agent: str) -> str:
    return f"spiffe://example.org/agent/{agent}/instance/1"


def agent_id(agent: str) -> str:
    return f"spiffe://example.org/agent/{agent}"


@pytest.fixture(scope="module")
def dev(platform: DevPlatform) -> DevPlatform:
    ok(platform.cli("users", "create", "alice"))
    for agent in ("helper", "sub", "subsub", "changing"):
        ok(platform.cli("agents", "register", agent, "--owner", "alice", "--purpose", "p",
                        "--tier", "dev", "--policy", "p", "--tool", "jira.create",
                        "--selector", "unix:uid:1", "--model-provider", "a", "--model-name",
                        "b", "--model-version", "1", "--hosting", "h", "--image-digest",
                        DIGEST, "--activate", "--json"))
    return platform


def svid(dev: DevPlatform, spiffe_id: str) -> str:
    with dev.http() as http:
        response = http.post("/api/v1/svids/jwt", json={"spiffe_id": spiffe_id,
                                                        "audience": [dev.url]})
    response.raise_for_status()
    return str(response.json()["token"])


def exchange(dev: DevPlatform, subject: str, agent: str, **extra: str) -> httpx.Response:
    token = svid(dev, instance(agent))
    return httpx.post(f"{dev.url}/oauth/token", data={
        "grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": JWT_TYPE,
        "actor_token": token, "actor_token_type": JWT_TYPE,
        "client_assertion_type": SPIFFE_ASSERTION, "client_assertion": token,
        "resource": RESOURCE, **extra})


def test_authlib_discovers_and_exchanges(dev: DevPlatform,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the dev server is plain HTTP
    document = httpx.get(f"{dev.url}/.well-known/oauth-authorization-server").json()
    metadata = AuthorizationServerMetadata(document)
    metadata.validate()
    assert metadata["issuer"] == dev.url
    assert "urn:ietf:params:oauth:grant-profile:id-jag" in \
        metadata["authorization_grant_profiles_supported"]
    assert metadata["mtls_endpoint_aliases"]["token_endpoint"].endswith("/oauth/token")
    client_svid = ok(dev.cli("jwt", "mint", "--spiffe-id", instance("helper"),
                             "--audience", metadata["issuer"]))
    user = ok(dev.cli("users", "token", "--user", "alice", "--scope",
                      "tools:jira.* tools:github.*"))
    client = OAuth2Client(client_id=instance("helper"), token_endpoint_auth_method="none")
    token = client.fetch_token(
        metadata["token_endpoint"], grant_type=EXCHANGE, subject_token=user,
        subject_token_type=JWT_TYPE, actor_token=client_svid, actor_token_type=JWT_TYPE,
        client_assertion_type=SPIFFE_ASSERTION, client_assertion=client_svid,
        resource=RESOURCE, scope="tools:jira.*")
    assert token["token_type"] == "Bearer" and token["scope"] == "tools:jira.*"
    assert token["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["act"] == {"sub": instance("helper")}


def test_oauth4webapi_exchanges_and_jose_verifies(dev: DevPlatform) -> None:
    user = ok(dev.cli("users", "token", "--user", "alice"))
    result = run_node_script(
        "oauth_exchange.mjs", "--issuer", dev.url, "--client-id", instance("sub"),
        "--svid", svid(dev, instance("sub")), "--subject-token", user,
        "--resource", RESOURCE, "--scope", "tools:jira.read")
    assert result["ok"] is True, result
    assert result["header"]["typ"] == "at+jwt" and result["header"]["alg"] == "ES256"
    assert result["payload"]["sub"] == "alice" and result["payload"]["aud"] == RESOURCE
    assert result["payload"]["scope"] == "tools:jira.read"
    assert result["payload"]["agent_proof"]["agent_id"] == "sub"
    assert result["metadata"]["issuer"] == dev.url


def test_three_hops_widening_introspection_and_revocation(dev: DevPlatform) -> None:
    user = ok(dev.cli("users", "token", "--user", "alice", "--scope", "tools:*"))
    # each agent delegates to the next by asking for a token whose resource is that agent
    one = exchange(dev, user, "helper", scope="tools:jira.* tools:github.*",
                   resource=agent_id("sub")).json()
    two = exchange(dev, one["access_token"], "sub", scope="tools:jira.*",
                   resource=agent_id("subsub")).json()
    wider = exchange(dev, two["access_token"], "subsub", scope="tools:github.*")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    assert wider.headers["cache-control"] == "no-store"
    three = exchange(dev, two["access_token"], "subsub", scope="tools:jira.read").json()
    seen = json.loads(ok(dev.cli("oauth", "introspect", three["access_token"], "--json")))
    assert seen["active"] is True and seen["scope"] == "tools:jira.read"
    assert seen["act"] == {"sub": instance("subsub"), "act": {
        "sub": instance("sub"), "act": {"sub": instance("helper")}}}
    # a token issued for the tool server is not another agent's to extend
    stolen = exchange(dev, three["access_token"], "helper")
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    table = ok(dev.cli("oauth", "introspect", three["access_token"]))
    assert instance("subsub") in table and "tools:jira.read" in table
    ok(dev.cli("oauth", "revoke", one["access_token"]))
    for token in (one, two, three):
        assert json.loads(ok(dev.cli("oauth", "introspect", token["access_token"],
                                     "--json"))) == {"active": False}
    again = exchange(dev, two["access_token"], "subsub")
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"


def test_a_pending_checksum_change_refuses_the_exchange(dev: DevPlatform) -> None:
    user = ok(dev.cli("users", "token", "--user", "alice"))
    first = exchange(dev, user, "changing")
    assert first.status_code == 200, first.text
    ok(dev.cli("agents", "update", "changing", "--system-prompt-digest", "sha256:" + "b" * 64))
    refused = exchange(dev, first.json()["access_token"], "changing")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert "recertification required" in refused.json()["error_description"]


def test_rfc_errors_over_http(dev: DevPlatform) -> None:
    user = ok(dev.cli("users", "token", "--user", "alice"))
    token = svid(dev, instance("helper"))
    no_client = httpx.post(f"{dev.url}/oauth/token", data={
        "grant_type": EXCHANGE, "subject_token": user, "subject_token_type": JWT_TYPE})
    assert no_client.status_code == 401 and no_client.json()["error"] == "invalid_client"
    assert "www-authenticate" in no_client.headers
    bad_grant = httpx.post(f"{dev.url}/oauth/token", data={"grant_type": "password"})
    assert bad_grant.json()["error"] == "unsupported_grant_type"
    no_target = httpx.post(f"{dev.url}/oauth/token", data={
        "grant_type": EXCHANGE, "subject_token": user, "subject_token_type": JWT_TYPE,
        "client_assertion_type": SPIFFE_ASSERTION, "client_assertion": token})
    assert no_target.status_code == 400 and no_target.json()["error"] == "invalid_target"
    as_json = httpx.post(f"{dev.url}/oauth/token", json={"grant_type": EXCHANGE})
    assert as_json.json()["error"] == "invalid_request"
    unauthenticated = httpx.post(f"{dev.url}/oauth/introspect", data={"token": "x"})
    assert unauthenticated.status_code == 401
    keys = httpx.get(f"{dev.url}/oauth/jwks").json()["keys"]
    bundle = httpx.get(f"{dev.url}/bundle").json()["keys"]
    assert {k["kid"] for k in keys}.isdisjoint({k.get("kid") for k in bundle})


def test_mtls_on_the_node_api_listener_binds_the_token(dev: DevPlatform,
                                                       tmp_path: Path) -> None:
    ok(dev.cli("x509", "mint", "--spiffe-id", instance("helper"), "--out-dir", str(tmp_path)))
    context = ssl.create_default_context(cafile=str(tmp_path / "bundle.pem"))
    context.load_cert_chain(tmp_path / "svid.pem", tmp_path / "svid.key")
    aliases = httpx.get(f"{dev.url}/.well-known/oauth-authorization-server").json()[
        "mtls_endpoint_aliases"]
    endpoint = aliases["token_endpoint"].replace("127.0.0.1", "localhost")
    user = ok(dev.cli("users", "token", "--user", "alice"))
    with httpx.Client(verify=context) as http:
        response = http.post(endpoint, data={
            "grant_type": EXCHANGE, "subject_token": user, "subject_token_type": JWT_TYPE,
            "client_id": instance("helper"), "resource": RESOURCE})
        assert response.status_code == 200, response.text
        wrong_id = http.post(endpoint, data={
            "grant_type": EXCHANGE, "subject_token": user, "subject_token_type": JWT_TYPE,
            "client_id": instance("sub"), "resource": RESOURCE})
        assert wrong_id.status_code == 401
    leaf = x509.load_pem_x509_certificate((tmp_path / "svid.pem").read_bytes())
    from cryptography.hazmat.primitives.serialization import Encoding

    thumbprint = base64.urlsafe_b64encode(
        hashlib.sha256(leaf.public_bytes(Encoding.DER)).digest()).rstrip(b"=").decode()
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"x5t#S256": thumbprint}


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "server") as server:
        yield server


def test_users_token_refuses_outside_dev_mode(plain_server: ServerProcess) -> None:
    result = plain_server.cli("users", "token", "--user", "alice")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: no demo user issuer here: it exists only under `tabard dev`"]
    metadata: dict[str, Any] = httpx.get(
        f"{plain_server.url}/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == plain_server.url
    assert httpx.get(f"{plain_server.url}/dev/issuer/jwks").status_code == 404
