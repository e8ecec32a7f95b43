"""JWT-SVID signing: STANDARDS.md §3.2 (header) and §3.3 (claims)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.authority.errors import CaExpiredError, SvidRequestError
from tabard.authority.jwt import JwtSigner
from tabard.clock import FakeClock
from tabard.spiffe import SpiffeId
from tests.unit.authority.conftest import WORKLOAD


def _segment(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_header_and_claims(clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = JwtSigner("kid-1", key, clock=clock).mint(WORKLOAD, ["spiffe://example.org/billing"])
    assert _segment(token, 0) == {"alg": "ES256", "kid": "kid-1", "typ": "JWT"}
    claims = jwt.decode(
        token,
        key.public_key(),
        algorithms=["ES256"],
        audience="spiffe://example.org/billing",
        options={"verify_exp": False},
    )
    now = int(clock.timestamp())
    assert claims["sub"] == str(WORKLOAD)
    assert claims["aud"] == "spiffe://example.org/billing"  # one audience: a string
    assert claims["iat"] == now
    assert claims["exp"] == now + 300
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert set(claims) == {"sub", "aud", "exp", "iat", "jti"}


def test_several_audiences_are_a_list_and_jti_is_unique(clock: FakeClock) -> None:
    signer = JwtSigner("k", ec.generate_private_key(ec.SECP256R1()), clock=clock)
    first = _segment(signer.mint(WORKLOAD, ["a", "b", "a"], timedelta(minutes=1)), 1)
    second = _segment(signer.mint(WORKLOAD, "a"), 1)
    assert first["aud"] == ["a", "b"]
    assert second["aud"] == "a"
    assert first["exp"] == int(clock.timestamp()) + 60
    assert first["jti"] != second["jti"]


@pytest.mark.parametrize("audience", [[], [""], ""])
def test_empty_audience_is_refused(clock: FakeClock, audience: list[str] | str) -> None:
    signer = JwtSigner("k", ec.generate_private_key(ec.SECP256R1()), clock=clock)
    with pytest.raises(SvidRequestError):
        signer.mint(WORKLOAD, audience)


def test_extra_claims_cannot_override_registered_ones(clock: FakeClock) -> None:
    signer = JwtSigner("k", ec.generate_private_key(ec.SECP256R1()), clock=clock)
    token = signer.mint(WORKLOAD, "a", extra_claims={"iss": "tabard", "tier": "prod"})
    claims = _segment(token, 1)
    assert claims["iss"] == "tabard" and claims["tier"] == "prod"
    with pytest.raises(SvidRequestError, match="sub"):
        signer.mint(WORKLOAD, "a", extra_claims={"sub": "spiffe://example.org/admin"})
    with pytest.raises(SvidRequestError, match="exp"):
        signer.mint(WORKLOAD, "a", extra_claims={"exp": 2**40})


def test_subject_must_be_a_workload_id(clock: FakeClock) -> None:
    signer = JwtSigner("k", ec.generate_private_key(ec.SECP256R1()), clock=clock)
    with pytest.raises(SvidRequestError):
        signer.mint(SpiffeId.parse("spiffe://example.org"), "a")
    with pytest.raises(SvidRequestError):
        signer.mint(WORKLOAD, "a", timedelta(0))


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("ES384", ec.generate_private_key(ec.SECP384R1())),
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("PS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ],
)
def test_other_algorithms_verify(
    clock: FakeClock, algorithm: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> None:
    token = JwtSigner("k", key, algorithm, clock=clock).mint(WORKLOAD, "a")
    assert _segment(token, 0) == {"alg": algorithm, "kid": "k", "typ": "JWT"}
    claims = jwt.decode(
        token, key.public_key(), algorithms=[algorithm], audience="a",
        options={"verify_exp": False},
    )
    assert claims["sub"] == str(WORKLOAD)


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("ES256", ec.generate_private_key(ec.SECP384R1())),
        ("RS256", ec.generate_private_key(ec.SECP256R1())),
        ("HS256", ec.generate_private_key(ec.SECP256R1())),
        ("none", ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_algorithm_must_fit_the_key_and_the_allow_list(
    clock: FakeClock, algorithm: str, key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(SvidRequestError):
        JwtSigner("k", key, algorithm, clock=clock)


def test_exp_is_capped_at_the_key_end(clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = JwtSigner("k", key, clock=clock, not_after=clock.now() + timedelta(minutes=2))
    assert _segment(signer.mint(WORKLOAD, "a"), 1)["exp"] == int(clock.timestamp()) + 120
    clock.advance(timedelta(minutes=2))
    with pytest.raises(CaExpiredError):
        signer.mint(WORKLOAD, "a")
