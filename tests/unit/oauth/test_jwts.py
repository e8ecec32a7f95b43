"""The AS's JWT verification: the compact form parsed once, PyJWT's algorithms doing the
cryptography; whatever ``jwt.decode`` refused is refused here too."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.oauth.jwts import JwtInvalid, key_resolver_for, unverified_claims, verify_jwt

NOW = 1_800_000_000
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEYS: dict[str, tuple[Any, str]] = {"ec": (EC_KEY.public_key(), "ES256"),
                                   "rsa": (RSA_KEY.public_key(), "RS256")}
RESOLVE = key_resolver_for(KEYS.get)
CLAIMS = {"sub": "alice", "exp": NOW + 60, "iat": NOW}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(kid: str = "ec", claims: dict[str, Any] | None = None, **header: Any) -> str:
    key, alg = (EC_KEY, "ES256") if kid == "ec" else (RSA_KEY, "RS256")
    return pyjwt.encode(claims or CLAIMS, key, algorithm=alg, headers={"kid": kid, **header})


@pytest.mark.parametrize("kid", ["ec", "rsa"])
def test_a_valid_token_verifies_and_gives_its_claims(kid: str) -> None:
    verified = verify_jwt(_token(kid), RESOLVE, now=NOW)
    assert verified.claims == CLAIMS and verified.header["kid"] == kid


def test_a_padded_segment_is_tolerated_as_jwt_decode_did() -> None:
    head, body, sig = _token("rsa").split(".")  # 256 bytes: a signature that pads
    assert len(sig) % 4
    padded = ".".join([head, body, sig + "=" * (-len(sig) % 4)])
    assert verify_jwt(padded, RESOLVE, now=NOW).claims["sub"] == "alice"


@pytest.mark.parametrize("mangle", [
    lambda t: t + ".x",                                  # four parts
    lambda t: t.replace(".", "", 1),                     # two parts
    lambda t: "!!!!" + t,                                # out of the alphabet
    lambda t: t.replace("-", "+").replace("_", "/") if ("-" in t or "_" in t) else "+" + t,
    lambda t: t.split(".")[0] + ".a." + t.split(".")[2],  # one stray character
    lambda t: t.split(".")[0] + "===." + ".".join(t.split(".")[1:]),  # too much padding
    lambda t: _b64(b"[1]") + "." + ".".join(t.split(".")[1:]),         # header not an object
    lambda t: t.split(".")[0] + "." + _b64(b"not json") + "." + t.split(".")[2],
    lambda t: "",
    lambda t: "a" * 20000,
])
def test_malformed_tokens_are_refused(mangle: Any) -> None:
    with pytest.raises(JwtInvalid):
        verify_jwt(mangle(_token()), RESOLVE, now=NOW)


def test_a_changed_claim_or_signature_does_not_verify() -> None:
    head, _body, sig = _token().split(".")
    forged = ".".join([head, _b64(json.dumps({**CLAIMS, "sub": "mallory"}).encode()), sig])
    with pytest.raises(JwtInvalid, match="signature does not verify"):
        verify_jwt(forged, RESOLVE, now=NOW)
    short = ".".join([head, _body, _b64(b"\x00" * 10)])
    with pytest.raises(JwtInvalid):
        verify_jwt(short, RESOLVE, now=NOW)


def test_alg_none_hmac_crit_and_key_mismatch_are_refused() -> None:
    unsigned = pyjwt.encode(CLAIMS, None, algorithm="none", headers={"kid": "ec"})
    with pytest.raises(JwtInvalid, match="asymmetric"):
        verify_jwt(unsigned, RESOLVE, now=NOW)
    hmac = pyjwt.encode(CLAIMS, "s" * 32, algorithm="HS256", headers={"kid": "ec"})
    with pytest.raises(JwtInvalid, match="asymmetric"):
        verify_jwt(hmac, RESOLVE, now=NOW)
    with pytest.raises(JwtInvalid, match="critical"):
        verify_jwt(_token(crit=["exp"]), RESOLVE, now=NOW)
    # an RSA-signed token claiming the EC key's kid: the alg does not match the key
    with pytest.raises(JwtInvalid, match="does not match"):
        verify_jwt(pyjwt.encode(CLAIMS, RSA_KEY, algorithm="RS256", headers={"kid": "ec"}),
                   RESOLVE, now=NOW)


def test_time_claims_are_checked_against_the_given_clock() -> None:
    with pytest.raises(JwtInvalid, match="expired"):
        verify_jwt(_token(), RESOLVE, now=NOW + 120, leeway=30)
    with pytest.raises(JwtInvalid, match="not valid yet"):
        verify_jwt(_token(claims={**CLAIMS, "nbf": NOW + 600}), RESOLVE, now=NOW)
    with pytest.raises(JwtInvalid, match="lacks"):
        verify_jwt(_token(claims={"sub": "alice"}), RESOLVE, now=NOW)
    for name in ("sub", "jti"):
        with pytest.raises(JwtInvalid, match="must be a string"):
            verify_jwt(_token(claims={**CLAIMS, name: 7}), RESOLVE, now=NOW)


def test_unverified_claims_reads_without_checking_the_signature() -> None:
    header, claims = unverified_claims(_token())
    assert header["alg"] == "ES256" and claims["sub"] == "alice"
