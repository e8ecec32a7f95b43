"""JWT-SVID validation (STANDARDS.md §3.4): one call, every rule, a stable reason per failure."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tabard.spiffe import (
    ALLOWED_ALGORITHMS,
    Bundle,
    BundleSet,
    JwtAuthority,
    JwtSvid,
    JwtSvidError,
    SpiffeId,
    TrustDomain,
    verify_jwt_svid,
)
from tabard.spiffe.bundle import jwk_from_public_key
from tabard.spiffe.jwtsvid import MAX_TOKEN_LENGTH
from tests.support.pki import (
    NOW,
    PrivateKey,
    hmac_with_public_key,
    jwt_claims,
    new_key,
    sign_jwt,
    sign_raw,
    tamper_signature,
    unsigned_token,
)

TD = TrustDomain("example.org")
PARTNER = TrustDomain("partner.example")
AUD = "spiffe://example.org/service"
T = NOW.timestamp()

KEY_KINDS = {"ES256": "ec256", "ES384": "ec384", "ES512": "ec521"}
_KEYS: dict[str, PrivateKey] = {}


def key_for(alg: str) -> PrivateKey:
    kind = KEY_KINDS.get(alg, "rsa2048")
    if kind not in _KEYS:
        _KEYS[kind] = new_key(kind)
    return _KEYS[kind]


@pytest.fixture(scope="module")
def bundles() -> BundleSet:
    authorities = tuple(
        JwtAuthority(f"kid-{kind}", key_for(alg).public_key())
        for alg, kind in [("ES256", "ec256"), ("ES384", "ec384"), ("ES512", "ec521"),
                          ("RS256", "rsa2048")]
    )
    return BundleSet([Bundle(TD, (), (*authorities, JwtAuthority("kid-1", key_for("ES256")
                                                                  .public_key())))])


def token(alg: str = "ES256", claims: dict[str, Any] | None = None, **kwargs: Any) -> str:
    kwargs.setdefault("kid", f"kid-{KEY_KINDS.get(alg, 'rsa2048')}")
    return sign_jwt(claims if claims is not None else jwt_claims(), key_for(alg), alg=alg,
                    **kwargs)


def reason_of(tok: str, bundles: Any, audience: Any = AUD, **kwargs: Any) -> str:
    kwargs.setdefault("now", T)
    with pytest.raises(JwtSvidError) as info:
        verify_jwt_svid(tok, bundles, audience, **kwargs)
    return info.value.reason


def b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(ALLOWED_ALGORITHMS))
def test_every_allowed_algorithm_validates(bundles: BundleSet, alg: str) -> None:
    svid = verify_jwt_svid(token(alg), bundles, AUD, now=T)
    assert svid.spiffe_id == SpiffeId.parse("spiffe://example.org/workload")
    assert svid.audience == (AUD,)
    assert svid.expiry == T + 300
    assert svid.key_id == f"kid-{KEY_KINDS.get(alg, 'rsa2048')}"
    assert svid.claims["iat"] == int(T)
    assert svid.trust_domain == TD


def test_the_result_carries_everything_but_shows_no_token(bundles: BundleSet) -> None:
    tok = token(claims=jwt_claims(aud=[AUD, "other"], jti="j-1", custom={"a": [1, 2]}))
    svid = verify_jwt_svid(tok, bundles, "other", now=T)
    assert isinstance(svid, JwtSvid)
    assert svid.token == tok and svid.audience == (AUD, "other")
    assert svid.claims["custom"] == {"a": [1, 2]} and svid.claims["jti"] == "j-1"
    assert tok not in repr(svid) and tok.split(".")[2] not in repr(svid)
    assert "spiffe://example.org/workload" in repr(svid)
    with pytest.raises(TypeError):
        svid.claims["sub"] = "x"  # type: ignore[index]


def test_audience_may_be_any_of_several(bundles: BundleSet) -> None:
    tok = token(claims=jwt_claims(aud=["a", "b"]))
    assert verify_jwt_svid(tok, bundles, ["x", "b"], now=T).audience == ("a", "b")
    assert verify_jwt_svid(tok, bundles, frozenset({"a"}), now=T)
    assert verify_jwt_svid(tok, bundles, (s for s in ["z", "a"]), now=T)


@pytest.mark.parametrize("typ", ["JWT", "JOSE", None])
def test_typ_is_optional_and_jwt_or_jose(bundles: BundleSet, typ: str | None) -> None:
    tok = token(typ=typ)
    assert ("typ" in json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))) == (
        typ is not None)
    assert verify_jwt_svid(tok, bundles, AUD, now=T)


def test_exp_and_nbf_bounds_and_leeway(bundles: BundleSet) -> None:
    tok = token(claims=jwt_claims(ttl=60, nbf=int(T) + 10))
    assert reason_of(tok, bundles, now=T + 9) == "not_yet_valid"
    assert verify_jwt_svid(tok, bundles, AUD, now=T + 10)
    assert verify_jwt_svid(tok, bundles, AUD, now=T + 59.9)
    assert reason_of(tok, bundles, now=T + 60) == "expired"  # exp itself is already too late
    assert verify_jwt_svid(tok, bundles, AUD, now=T + 60, leeway=5)
    assert verify_jwt_svid(tok, bundles, AUD, now=T + 6, leeway=5)
    assert reason_of(tok, bundles, now=T + 65, leeway=5) == "expired"


def test_fractional_numeric_dates_are_accepted(bundles: BundleSet) -> None:
    tok = token(claims=jwt_claims(exp=T + 0.5, nbf=T - 0.5))
    assert verify_jwt_svid(tok, bundles, AUD, now=T).expiry == T + 0.5


# --- rejected ------------------------------------------------------------------------------


def test_alg_none(bundles: BundleSet) -> None:
    assert reason_of(unsigned_token(jwt_claims()), bundles) == "alg_not_allowed"


def test_hs256_keyed_with_the_public_key_pem(bundles: BundleSet) -> None:
    tok = hmac_with_public_key(jwt_claims(), key_for("ES256"), kid="kid-ec256")
    assert reason_of(tok, bundles) == "alg_not_allowed"


@pytest.mark.parametrize("alg", ["HS256", "HS512", "EdDSA", "ES256K", "none", "NONE", "es256",
                                 "RSA-OAEP", "", None, 7, ["ES256"]])
def test_any_other_alg_fails_before_any_crypto(bundles: BundleSet, alg: Any) -> None:
    header = {"alg": alg, "kid": "kid-ec256", "typ": "JWT"}
    if alg is None:
        del header["alg"]
    tok = f"{b64(header)}.{b64(jwt_claims())}.{b64(b'sig')}"
    assert reason_of(tok, bundles) == "alg_not_allowed"


def test_key_type_must_match_the_alg(bundles: BundleSet) -> None:
    # an RS256 token whose kid names an EC key, and the other way round
    rsa_signed = sign_jwt(jwt_claims(), key_for("RS256"), alg="RS256", kid="kid-ec256")
    assert reason_of(rsa_signed, bundles) == "alg_not_allowed"
    ec_signed = sign_jwt(jwt_claims(), key_for("ES256"), alg="ES256", kid="kid-rsa2048")
    assert reason_of(ec_signed, bundles) == "alg_not_allowed"
    # ES384 with a P-256 key, ES256 with a P-384 key
    p384 = sign_jwt(jwt_claims(), key_for("ES384"), alg="ES384", kid="kid-ec256")
    assert reason_of(p384, bundles) == "alg_not_allowed"
    wrong_curve = sign_raw({"alg": "ES256", "kid": "kid-ec384"}, jwt_claims(), key_for("ES256"),
                           alg="ES256")
    assert reason_of(wrong_curve, bundles) == "alg_not_allowed"


def test_unknown_kid(bundles: BundleSet) -> None:
    assert reason_of(token(kid="kid-unknown"), bundles) == "unknown_kid"


def test_missing_kid(bundles: BundleSet) -> None:
    assert reason_of(token(kid=None), bundles) == "missing_kid"
    for kid in ("", 5, None, ["kid-ec256"]):
        tok = sign_raw({"alg": "ES256", "kid": kid}, jwt_claims(), key_for("ES256"), alg="ES256")
        assert reason_of(tok, bundles) == "missing_kid"


def test_expired(bundles: BundleSet) -> None:
    assert reason_of(token(claims=jwt_claims(ttl=-1)), bundles) == "expired"


def test_nbf_in_the_future(bundles: BundleSet) -> None:
    assert reason_of(token(claims=jwt_claims(nbf=int(T) + 30)), bundles) == "not_yet_valid"


def test_wrong_audience(bundles: BundleSet) -> None:
    assert reason_of(token(), bundles, audience="spiffe://example.org/other") == (
        "audience_mismatch")
    assert reason_of(token(claims=jwt_claims(aud=[])), bundles) == "audience_mismatch"
    assert reason_of(token(), bundles, audience=[]) == "audience_mismatch"
    # no prefix or case games
    assert reason_of(token(), bundles, audience=AUD.upper()) == "audience_mismatch"
    assert reason_of(token(claims=jwt_claims(aud=AUD + "/x")), bundles) == "audience_mismatch"


@pytest.mark.parametrize("claim", ["aud", "sub", "exp"])
def test_required_claims(bundles: BundleSet, claim: str) -> None:
    claims = jwt_claims()
    del claims[claim]
    assert reason_of(token(claims=claims), bundles) == "missing_claim"


@pytest.mark.parametrize("sub", ["example.org/workload", "https://example.org/w",
                                 "spiffe://Example.org/w", "spiffe://example.org/w/", 42, None])
def test_sub_must_be_a_spiffe_id(bundles: BundleSet, sub: Any) -> None:
    claims = {**jwt_claims(), "sub": sub}
    assert reason_of(token(claims=claims), bundles) == "bad_subject"


def test_sub_in_a_trust_domain_without_a_bundle(bundles: BundleSet) -> None:
    tok = token(claims=jwt_claims(sub="spiffe://partner.example/w"))
    assert reason_of(tok, bundles) == "untrusted_trust_domain"


def test_keys_of_one_trust_domain_never_vouch_for_another() -> None:
    ours, theirs = key_for("ES256"), new_key()
    federated = BundleSet([Bundle(TD, (), (JwtAuthority("ours", ours.public_key()),)),
                           Bundle(PARTNER, (), (JwtAuthority("theirs", theirs.public_key()),))])
    forged = sign_jwt(jwt_claims(sub="spiffe://partner.example/admin"), ours, kid="ours")
    assert reason_of(forged, federated) == "unknown_kid"
    genuine = sign_jwt(jwt_claims(sub="spiffe://partner.example/w"), theirs, kid="theirs")
    assert verify_jwt_svid(genuine, federated, AUD, now=T).trust_domain == PARTNER
    # the partner's key under a kid that the partner bundle does not hold
    relabelled = sign_jwt(jwt_claims(sub="spiffe://partner.example/w"), theirs, kid="ours")
    assert reason_of(relabelled, federated) == "unknown_kid"


def test_tampered_signature_and_payload(bundles: BundleSet) -> None:
    for alg in ("ES256", "RS256", "PS256"):
        assert reason_of(tamper_signature(token(alg)), bundles) == "bad_signature"
    header, _, signature = token().split(".")
    other_payload = b64(jwt_claims(sub="spiffe://example.org/admin"))
    assert reason_of(f"{header}.{other_payload}.{signature}", bundles) == "bad_signature"
    assert reason_of(f"{header}.{token().split('.')[1]}.{b64(b'x' * 64)}", bundles) == (
        "bad_signature")
    assert reason_of(f"{header}.{token().split('.')[1]}.{b64(b'x' * 63)}", bundles) == (
        "bad_signature")
    # another key of the bundle did not sign it
    resigned = sign_jwt(jwt_claims(), new_key(), kid="kid-ec256")
    assert reason_of(resigned, bundles) == "bad_signature"


@pytest.mark.parametrize("param", ["jwk", "jku", "x5u", "x5c", "crit", "cty", "b64", "x5t",
                                   "zip", "private"])
def test_forbidden_header_parameters(bundles: BundleSet, param: str) -> None:
    value: Any = {"kty": "EC"} if param == "jwk" else ["x"] if param in ("crit", "x5c") else "x"
    header = {"alg": "ES256", "kid": "kid-ec256", "typ": "JWT", param: value}
    tok = sign_raw(header, jwt_claims(), key_for("ES256"), alg="ES256")
    assert reason_of(tok, bundles) == "forbidden_header"


def test_the_jwk_header_cannot_inject_a_key(bundles: BundleSet) -> None:
    attacker = new_key()
    tok = sign_jwt(jwt_claims(), attacker, kid="kid-ec256",
                   headers={"jwk": jwk_from_public_key(attacker.public_key())})
    assert reason_of(tok, bundles) == "forbidden_header"


@pytest.mark.parametrize("typ", ["at+jwt", "jwt", "", "JWS", 1])
def test_bad_typ(bundles: BundleSet, typ: Any) -> None:
    tok = sign_raw({"alg": "ES256", "kid": "kid-ec256", "typ": typ}, jwt_claims(),
                   key_for("ES256"), alg="ES256")
    assert reason_of(tok, bundles) == "bad_typ"


DUPLICATE_ALG = b'{"alg":"ES256","alg":"none","kid":"kid-ec256"}'
NOT_UTF8 = b"\xff\xfe"


def _header() -> str:
    return b64({"alg": "ES256", "kid": "kid-ec256"})


@pytest.mark.parametrize(
    "tok",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        "eyJ.eyJ.",
        "a b.c.d",
        "YQ==.YQ.YQ",
        "a+b.c.d",
        "a/b.c.d",
        f"{b64(b'not json')}.{b64(jwt_claims())}.{b64(b's')}",
        f"{b64([1, 2])}.{b64(jwt_claims())}.{b64(b's')}",
        b64(DUPLICATE_ALG) + "." + b64(jwt_claims()) + ".c2ln",
        b64(NOT_UTF8) + "." + b64(jwt_claims()) + ".c2ln",
        f"{_header()}.{b64(b'[]')}.{b64(b's')}",
        f"{_header()}.{b64(b'not json')}.{b64(b's')}",
        f"{_header()}.{b64(jwt_claims())}",
        f"{_header()}.{b64(jwt_claims())}.{b64(b's')}.",
        f"{_header()}.{b64(jwt_claims())}.a",
    ],
)
def test_malformed_tokens(bundles: BundleSet, tok: str) -> None:
    assert reason_of(tok, bundles) == "malformed"


def test_non_strings_are_malformed(bundles: BundleSet) -> None:
    assert reason_of(None, bundles) == "malformed"  # type: ignore[arg-type]
    assert reason_of(token().encode(), bundles) == "malformed"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "1767225900"), ("exp", True), ("exp", None), ("exp", [1]), ("nbf", "0"),
     ("nbf", False), ("exp", 10**400), ("aud", 5), ("aud", ["ok", 5]), ("aud", {"a": 1})],
)
def test_claim_types(bundles: BundleSet, claim: str, value: Any) -> None:
    claims = {**jwt_claims(), claim: value}
    assert reason_of(token(claims=claims), bundles) == "malformed"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers(bundles: BundleSet, literal: bytes) -> None:
    body = json.dumps(jwt_claims()).encode().replace(
        str(jwt_claims()["exp"]).encode(), literal)
    tok = sign_raw({"alg": "ES256", "kid": "kid-ec256"}, body, key_for("ES256"), alg="ES256")
    assert reason_of(tok, bundles) == "malformed"


def test_checks_run_in_the_order_of_the_spec(bundles: BundleSet) -> None:
    """Header before claims, trust before signature, signature before time and audience."""
    expired_for_someone_else = jwt_claims(ttl=-10, aud="other")
    assert reason_of(tamper_signature(token(claims=expired_for_someone_else)), bundles) == (
        "bad_signature")
    assert reason_of(token(claims=expired_for_someone_else, kid="nope"), bundles) == (
        "unknown_kid")
    assert reason_of(token(claims={"aud": "x"}, headers={"jku": "x"}), bundles) == (
        "forbidden_header")


def test_error_category_and_no_token_in_messages(bundles: BundleSet) -> None:
    tok = tamper_signature(token())
    with pytest.raises(JwtSvidError) as info:
        verify_jwt_svid(tok, bundles, AUD, now=T)
    assert info.value.code == "invalid_jwt_svid"
    for part in tok.split("."):
        assert part not in str(info.value)


def test_oversized_tokens_are_refused_unparsed(bundles: BundleSet) -> None:
    claims = jwt_claims(padding="x" * (MAX_TOKEN_LENGTH))
    assert reason_of(token(claims=claims), bundles) == "malformed"
    assert verify_jwt_svid(token(claims=jwt_claims(padding="x" * 30_000)), bundles, AUD, now=T)


def test_json_whitespace_is_allowed_and_trailing_data_is_not(bundles: BundleSet) -> None:
    body = json.dumps(jwt_claims(), indent=2).encode()
    for payload, ok in [(b" \n" + body + b"\n ", True), (body + b" {}", False),
                        (body + b"x", False)]:
        tok = sign_raw({"alg": "ES256", "kid": "kid-ec256"}, payload, key_for("ES256"),
                       alg="ES256")
        if ok:
            assert verify_jwt_svid(tok, bundles, AUD, now=T)
        else:
            assert reason_of(tok, bundles) == "malformed"
