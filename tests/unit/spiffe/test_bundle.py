"""SPIFFE bundle documents (STANDARDS.md §4.2): round trip and the ignore/reject rules."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tabard.spiffe import Bundle, BundleError, BundleSet, JwtAuthority, TrustDomain
from tabard.spiffe.bundle import jwk_from_public_key
from tests.support.pki import make_ca, new_key

TD = TrustDomain("example.org")


def _bundle() -> Bundle:
    ec_root = make_ca()
    rsa_root = make_ca(key=new_key("rsa2048"), common_name="rsa root")
    return Bundle(
        TD,
        (ec_root.cert, rsa_root.cert),
        (
            JwtAuthority("ec-256", new_key("ec256").public_key()),
            JwtAuthority("ec-384", new_key("ec384").public_key()),
            JwtAuthority("ec-521", new_key("ec521").public_key()),
            JwtAuthority("rsa", new_key("rsa2048").public_key()),
        ),
        sequence=7,
        refresh_hint=300,
    )


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def test_to_jwks_then_parse_gives_the_same_bundle() -> None:
    original = _bundle()
    for document in (original.to_jwks(), original.to_json(), original.to_json().decode()):
        parsed = Bundle.parse(TD, document)
        assert parsed.trust_domain == TD
        assert parsed.x509_authorities == original.x509_authorities
        assert parsed.sequence == 7 and parsed.refresh_hint == 300
        assert [a.key_id for a in parsed.jwt_authorities] == ["ec-256", "ec-384", "ec-521", "rsa"]
        for before, after in zip(original.jwt_authorities, parsed.jwt_authorities, strict=True):
            assert _spki(before.public_key) == _spki(after.public_key)


def test_wire_shape_follows_the_spec() -> None:
    doc = _bundle().to_jwks()
    x509_entries = [k for k in doc["keys"] if k["use"] == "x509-svid"]
    jwt_entries = [k for k in doc["keys"] if k["use"] == "jwt-svid"]
    assert len(x509_entries) == 2 and len(jwt_entries) == 4
    for entry in x509_entries:
        assert "kid" not in entry and len(entry["x5c"]) == 1
        base64.b64decode(entry["x5c"][0], validate=True)  # standard base64, not base64url
    assert all(entry["kid"] for entry in jwt_entries)


def test_unknown_use_and_kty_are_ignored() -> None:
    doc = _bundle().to_jwks()
    okp = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
           "use": "jwt-svid", "kid": "ed"}
    wit = {**jwk_from_public_key(new_key().public_key()), "use": "wit-svid", "kid": "wit-1"}
    no_use = {**jwk_from_public_key(new_key().public_key()), "kid": "no-use"}
    x509_without_x5c = {**jwk_from_public_key(new_key().public_key()), "use": "x509-svid"}
    doc["keys"] += [okp, wit, no_use, x509_without_x5c, {"kty": "oct", "k": "c2VjcmV0"}]
    doc["unknown_member"] = {"anything": True}
    parsed = Bundle.parse(TD, json.dumps(doc))
    assert len(parsed.x509_authorities) == 2
    assert [a.key_id for a in parsed.jwt_authorities] == ["ec-256", "ec-384", "ec-521", "rsa"]


def test_a_jwt_svid_entry_without_kid_is_rejected() -> None:
    doc = {"keys": [{**jwk_from_public_key(new_key().public_key()), "use": "jwt-svid"}]}
    with pytest.raises(BundleError, match="kid"):
        Bundle.parse(TD, doc)


def test_empty_keys_is_a_bundle_without_authorities() -> None:
    parsed = Bundle.parse(TD, b'{"keys": []}')
    assert parsed.x509_authorities == () and parsed.jwt_authorities == ()


@pytest.mark.parametrize("document", [b"not json", b"[]", b'{"keys": {}}', b"{}"])
def test_documents_that_are_not_jwk_sets_are_rejected(document: bytes) -> None:
    with pytest.raises(BundleError):
        Bundle.parse(TD, document)


def test_a_bundle_set_holds_one_bundle_per_trust_domain() -> None:
    other = TrustDomain("partner.example")
    first, second = Bundle(TD, sequence=1), Bundle(TD, sequence=2)
    bundles = BundleSet([first, Bundle(other)])
    bundles.put(second)
    assert len(bundles) == 2
    assert bundles.get_bundle_for_trust_domain(TD) is second
    bundles.remove(other)
    assert bundles.get_bundle_for_trust_domain(other) is None
    assert second.get_bundle_for_trust_domain(TD) is second
    assert second.get_bundle_for_trust_domain(other) is None
