"""JWT-SVIDs minted through the CLI, verified by npm ``jose`` against ``/bundle`` and by PyJWT."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest

from tabard.spiffe import Bundle, TrustDomain
from tests.support.node import run_node_script
from tests.support.platform import DevPlatform

pytestmark = pytest.mark.interop


def test_npm_jose_verifies_against_the_bundle_endpoint(platform: DevPlatform) -> None:
    minted = platform.cli("jwt", "mint", "--spiffe-id", "spiffe://example.org/agent/a",
                          "--audience", "billing", "--ttl", "2m")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    ok = run_node_script("verify_jwt.mjs", "--jwks", f"{platform.url}/bundle", "--token", token,
                         "--audience", "billing")
    assert ok["ok"] is True
    assert ok["payload"]["sub"] == "spiffe://example.org/agent/a"
    assert ok["header"]["alg"] == "ES256" and ok["header"]["typ"] == "JWT" and ok["header"]["kid"]
    assert 100 <= ok["payload"]["exp"] - ok["payload"]["iat"] <= 120

    wrong = run_node_script("verify_jwt.mjs", "--jwks", f"{platform.url}/bundle", "--token",
                            token, "--audience", "payroll")
    assert wrong["ok"] is False and wrong["error"] == "ERR_JWT_CLAIM_VALIDATION_FAILED"


def test_pyjwt_verifies_with_the_bundle_key(platform: DevPlatform) -> None:
    token = platform.cli("jwt", "mint", "--spiffe-id", "spiffe://example.org/agent/a",
                         "-a", "billing", "-a", "audit").stdout.strip()
    bundle = Bundle.parse(TrustDomain("example.org"), httpx.get(f"{platform.url}/bundle").text)
    kid = jwt.get_unverified_header(token)["kid"]
    authority = bundle.jwt_authority(kid)
    assert authority is not None
    claims = jwt.decode(token, authority.public_key, algorithms=["ES256"], audience="audit")
    assert claims["sub"] == "spiffe://example.org/agent/a"
    assert sorted(claims["aud"]) == ["audit", "billing"]
    assert claims["exp"] > time.time()
    document = json.loads(httpx.get(f"{platform.url}/bundle").text)
    assert all("kid" not in k for k in document["keys"] if k["use"] == "x509-svid")
    assert document["spiffe_sequence"] >= 1 and document["spiffe_refresh_hint"] == 300
