"""One test per entry of deviations.py, pinning the deliberate behaviour it describes."""

from __future__ import annotations

import base64
import json
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from tabard.spiffe import (
    Bundle,
    BundleSet,
    JwtAuthority,
    JwtSvidError,
    SpiffeId,
    SpiffeIdError,
    TrustDomain,
    X509SvidError,
    verify_jwt_svid,
    verify_x509_svid,
)
from tests.conformance.deviations import DEVIATIONS
from tests.support.pki import (
    NOW,
    KeyUsageBits,
    jwt_claims,
    make_ca,
    make_leaf,
    new_key,
    sign_raw,
)

TD = TrustDomain("example.org")
T = NOW.timestamp()
JWT_KEY = new_key()
JWT_BUNDLES = BundleSet([Bundle(TD, (), (JwtAuthority("k", JWT_KEY.public_key()),))])


def x509_reason(chain: list[x509.Certificate], bundle: Bundle) -> str:
    with pytest.raises(X509SvidError) as info:
        verify_x509_svid(chain, bundle, at=NOW)
    return info.value.reason


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_reason(header: dict[str, object] | bytes, key: object = JWT_KEY, alg: str = "ES256"
               ) -> str:
    if isinstance(header, bytes):
        token = f"{_b64(header)}.{_b64(json.dumps(jwt_claims()).encode())}.c2ln"
    else:
        token = sign_raw(header, jwt_claims(), key, alg=alg)  # type: ignore[arg-type]
    with pytest.raises(JwtSvidError) as info:
        verify_jwt_svid(token, JWT_BUNDLES, "spiffe://example.org/service", now=T)
    return info.value.reason


def test_every_deviation_is_pinned_by_a_test() -> None:
    ids = [d.id for d in DEVIATIONS]
    assert len(ids) == len(set(ids))
    module = sys.modules[__name__]
    missing = [i for i in ids if not callable(getattr(module, f"test_{i}", None))]
    assert missing == []
    assert all(d.kind in ("stricter", "laxer", "unsupported") for d in DEVIATIONS)
    assert all(d.reason and d.behaviour and d.rule and d.spec for d in DEVIATIONS)


def test_uppercase_scheme_rejected() -> None:
    for value in ("SPIFFE://example.org/x", "Spiffe://example.org/x", "spiffe://EXAMPLE.org/x"):
        with pytest.raises(SpiffeIdError):
            SpiffeId.parse(value)


def test_jwt_kid_required() -> None:
    assert jwt_reason({"alg": "ES256", "typ": "JWT"}) == "missing_kid"


def test_jwt_extra_header_rejected() -> None:
    for param in ("crit", "jku", "x5u", "jwk", "x5c", "cty", "x-private"):
        assert jwt_reason({"alg": "ES256", "kid": "k", param: "v"}) == "forbidden_header"


def test_jwt_duplicate_header_member_rejected() -> None:
    assert jwt_reason(b'{"alg":"ES256","kid":"k","kid":"k"}') == "malformed"


def test_x509_leaf_digital_signature_required() -> None:
    root = make_ca()
    bundle = Bundle(TD, (root.cert,))
    no_ds = make_leaf(root, key_usage=KeyUsageBits(key_agreement=True))
    no_ku = make_leaf(root, key_usage=None)
    assert x509_reason([no_ds.cert], bundle) == "bad_key_usage"
    assert x509_reason([no_ku.cert], bundle) == "bad_key_usage"


def test_x509_eku_not_enforced() -> None:
    root = make_ca()
    inter = make_ca(issuer=root, common_name="server-only EKU",
                    eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    bundle = Bundle(TD, (root.cert,))
    for eku in (None, [ExtendedKeyUsageOID.SERVER_AUTH], [ExtendedKeyUsageOID.CODE_SIGNING]):
        leaf = make_leaf(inter, eku=eku)
        assert verify_x509_svid([leaf.cert, inter.cert], bundle, at=NOW)


def test_x509_leaf_aki_optional() -> None:
    root = make_ca()
    leaf = make_leaf(root, authority_key_id=False)
    assert verify_x509_svid([leaf.cert], Bundle(TD, (root.cert,)), at=NOW)


def test_x509_leaf_key_usage_criticality_not_checked() -> None:
    root = make_ca()
    key = new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "w")]))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(root.cert.not_valid_before_utc)
        .not_valid_after(root.cert.not_valid_after_utc)
        .add_extension(KeyUsageBits(digital_signature=True).extension(), critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier("spiffe://example.org/w")]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            root.key.public_key()), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    assert verify_x509_svid([cert], Bundle(TD, (root.cert,)), at=NOW).path == "/w"


def test_x509_uri_name_constraints_unsupported() -> None:
    root = make_ca()
    constrained = make_ca(
        issuer=root,
        common_name="constrained",
        name_constraints=x509.NameConstraints(
            permitted_subtrees=[x509.UniformResourceIdentifier("example.org")],
            excluded_subtrees=None,
        ),
    )
    leaf = make_leaf(constrained)
    assert x509_reason([leaf.cert, constrained.cert], Bundle(TD, (root.cert,))) == (
        "invalid_chain")


def test_x509_web_pki_profile_rules() -> None:
    weak_root = make_ca(key=new_key("rsa1024"), common_name="weak")
    leaf = make_leaf(weak_root)
    assert x509_reason([leaf.cert], Bundle(TD, (weak_root.cert,))) == "invalid_chain"
    root = make_ca()
    no_ku = make_ca(issuer=root, common_name="CA without keyUsage", key_usage=None)
    leaf = make_leaf(no_ku)
    assert x509_reason([leaf.cert, no_ku.cert], Bundle(TD, (root.cert,))) == "invalid_chain"


def test_jwt_es512_means_p521() -> None:
    p256 = BundleSet([Bundle(TD, (), (JwtAuthority("k", JWT_KEY.public_key()),))])
    token = sign_raw({"alg": "ES512", "kid": "k"}, jwt_claims(), JWT_KEY, alg="ES256")
    with pytest.raises(JwtSvidError) as info:
        verify_jwt_svid(token, p256, "spiffe://example.org/service", now=T)
    assert info.value.reason == "alg_not_allowed"
