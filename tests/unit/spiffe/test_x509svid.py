"""X509-SVID validation (STANDARDS.md §2.5) and the X509Svid value."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tabard.spiffe import (
    Bundle,
    BundleSet,
    SpiffeId,
    TrustDomain,
    X509Svid,
    X509SvidError,
    verify_x509_svid,
)
from tests.support.pki import (
    CA_USAGE,
    NOW,
    Issued,
    KeyUsageBits,
    make_ca,
    make_leaf,
    new_key,
    pem_chain,
)

TD = TrustDomain("example.org")
PARTNER = TrustDomain("partner.example")


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def bundle(root: Issued) -> Bundle:
    return Bundle(TD, (root.cert,))


def reason_of(chain: list[x509.Certificate], bundles: object, **kwargs: object) -> str:
    with pytest.raises(X509SvidError) as info:
        verify_x509_svid(chain, bundles, at=kwargs.get("at", NOW))  # type: ignore[arg-type]
    return info.value.reason


# --- accepted ------------------------------------------------------------------------------


def test_a_leaf_signed_by_the_root_validates(root: Issued, bundle: Bundle) -> None:
    leaf = make_leaf(root, "spiffe://example.org/ns/prod/web")
    assert verify_x509_svid([leaf.cert], bundle, at=NOW) == SpiffeId.parse(
        "spiffe://example.org/ns/prod/web"
    )


def test_a_chain_through_intermediates_validates(root: Issued, bundle: Bundle) -> None:
    inter = make_ca(issuer=root, common_name="intermediate 1")
    inter2 = make_ca(issuer=inter, common_name="intermediate 2")
    leaf = make_leaf(inter2)
    assert verify_x509_svid([leaf.cert, inter2.cert, inter.cert], bundle, at=NOW).path == (
        "/workload"
    )
    # order of the intermediates does not matter, extra certificates are ignored
    unrelated = make_ca(common_name="unrelated")
    assert verify_x509_svid([leaf.cert, inter.cert, unrelated.cert, inter2.cert], bundle, at=NOW)


def test_the_anchor_may_be_an_intermediate_published_in_the_bundle(root: Issued) -> None:
    inter = make_ca(issuer=root, common_name="published intermediate")
    leaf = make_leaf(inter)
    assert verify_x509_svid([leaf.cert], Bundle(TD, (inter.cert,)), at=NOW)


@pytest.mark.parametrize("kind", ["ec384", "ec521", "rsa2048"])
def test_other_key_types_validate(kind: str) -> None:
    root = make_ca(key=new_key(kind))
    leaf = make_leaf(root, key=new_key(kind))
    assert verify_x509_svid([leaf.cert], Bundle(TD, (root.cert,)), at=NOW)


def test_optional_leaf_details_are_accepted(root: Issued, bundle: Bundle) -> None:
    named = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")])
    for leaf in (
        make_leaf(root, basic_constraints=False),  # cA absent means false
        make_leaf(root, dns=["web.internal", "web"]),  # other SAN types in any number
        make_leaf(root, subject=named),  # subject present, SAN then may be non-critical
        make_leaf(root, key_usage=KeyUsageBits(digital_signature=True, key_encipherment=True)),
    ):
        assert verify_x509_svid([leaf.cert], bundle, at=NOW)


def test_validity_bounds_are_inclusive(root: Issued, bundle: Bundle) -> None:
    leaf = make_leaf(root, not_before=NOW, not_after=NOW + timedelta(minutes=5))
    assert verify_x509_svid([leaf.cert], bundle, at=NOW)
    assert verify_x509_svid([leaf.cert], bundle, at=NOW + timedelta(minutes=5))
    assert verify_x509_svid([leaf.cert], bundle, at=(NOW + timedelta(minutes=1)).replace(
        tzinfo=None))  # naive means UTC


def test_a_set_of_bundles_selects_the_leafs_trust_domain(root: Issued) -> None:
    partner_root = make_ca("partner.example")
    bundles = BundleSet([Bundle(TD, (root.cert,)), Bundle(PARTNER, (partner_root.cert,))])
    ours = make_leaf(root, "spiffe://example.org/a")
    theirs = make_leaf(partner_root, "spiffe://partner.example/b")
    assert verify_x509_svid([ours.cert], bundles, at=NOW).trust_domain == TD
    assert verify_x509_svid([theirs.cert], bundles, at=NOW).trust_domain == PARTNER


# --- rejected ------------------------------------------------------------------------------


def test_empty_chain(bundle: Bundle) -> None:
    assert reason_of([], bundle) == "empty_chain"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"uris": []}, "no_uri_san"),
        ({"uris": [], "dns": ["web.internal"]}, "no_uri_san"),
        ({"uris": ["spiffe://example.org/a", "spiffe://example.org/b"]}, "multiple_uri_sans"),
        ({"uris": ["spiffe://example.org/a", "https://example.org/a"]}, "multiple_uri_sans"),
        ({"uris": ["https://example.org/a"]}, "bad_spiffe_id"),
        ({"uris": ["spiffe://Example.org/a"]}, "bad_spiffe_id"),
        ({"uris": ["spiffe://example.org/a/"]}, "bad_spiffe_id"),
        ({"uris": ["spiffe://example.org"]}, "no_path"),
        ({"ca": True}, "leaf_is_ca"),
        ({"ca": True, "key_usage": CA_USAGE}, "leaf_is_ca"),
        ({"key_usage": None}, "bad_key_usage"),
        ({"key_usage": KeyUsageBits(digital_signature=True, key_cert_sign=True)},
         "bad_key_usage"),
        ({"key_usage": KeyUsageBits(digital_signature=True, crl_sign=True)}, "bad_key_usage"),
        ({"key_usage": KeyUsageBits(key_encipherment=True)}, "bad_key_usage"),
        ({"not_after": NOW - timedelta(seconds=1)}, "expired"),
        ({"not_before": NOW + timedelta(seconds=1)}, "not_yet_valid"),
    ],
)
def test_leaf_rules(root: Issued, bundle: Bundle, overrides: dict[str, object],
                    reason: str) -> None:
    leaf = make_leaf(root, **overrides)  # type: ignore[arg-type]
    assert reason_of([leaf.cert], bundle) == reason


def test_a_trust_domain_without_a_bundle_is_untrusted(root: Issued, bundle: Bundle) -> None:
    partner_root = make_ca("partner.example")
    leaf = make_leaf(partner_root, "spiffe://partner.example/b")
    assert reason_of([leaf.cert], bundle) == "untrusted_trust_domain"
    assert reason_of([leaf.cert], BundleSet([bundle])) == "untrusted_trust_domain"
    # federating adds partner.example's own bundle, and only then it validates
    federated = BundleSet([bundle, Bundle(PARTNER, (partner_root.cert,))])
    assert verify_x509_svid([leaf.cert], federated, at=NOW).trust_domain == PARTNER


def test_bundles_are_never_merged(root: Issued, bundle: Bundle) -> None:
    """A leaf claiming partner.example signed by example.org's CA: the partner bundle decides."""
    partner_root = make_ca("partner.example")
    forged = make_leaf(root, "spiffe://partner.example/admin")
    both = BundleSet([bundle, Bundle(PARTNER, (partner_root.cert,))])
    assert reason_of([forged.cert], both) == "unknown_authority"
    # and a partner root never vouches for example.org identities
    sneaky = make_leaf(partner_root, "spiffe://example.org/admin")
    assert reason_of([sneaky.cert], both) == "unknown_authority"


def test_a_chain_to_an_unknown_root(bundle: Bundle) -> None:
    stranger = make_ca(common_name="stranger")
    assert reason_of([make_leaf(stranger).cert], bundle) == "unknown_authority"
    # same name as the trusted root, different key: still unknown, not a signature failure
    lookalike = make_ca()
    assert reason_of([make_leaf(lookalike).cert], bundle) == "unknown_authority"


def test_a_missing_intermediate_is_an_unknown_authority(root: Issued, bundle: Bundle) -> None:
    inter = make_ca(issuer=root, common_name="not presented")
    assert reason_of([make_leaf(inter).cert], bundle) == "unknown_authority"


def test_a_bundle_without_x509_authorities_trusts_no_chain(root: Issued) -> None:
    leaf = make_leaf(root)
    assert reason_of([leaf.cert], Bundle(TD)) == "unknown_authority"


def test_a_bad_signature(root: Issued, bundle: Bundle) -> None:
    leaf = make_leaf(root, sign_key=new_key())
    assert reason_of([leaf.cert], bundle) == "bad_signature"
    inter = make_ca(issuer=root, common_name="inter")
    forged_inter = make_ca(issuer=root, common_name="forged inter", sign_key=new_key())
    leaf2 = make_leaf(forged_inter)
    assert reason_of([leaf2.cert, forged_inter.cert, inter.cert], bundle) == "bad_signature"


def test_an_expired_or_future_intermediate(root: Issued, bundle: Bundle) -> None:
    old = make_ca(issuer=root, common_name="old", not_after=NOW - timedelta(minutes=1))
    leaf = make_leaf(old)
    assert reason_of([leaf.cert, old.cert], bundle) == "expired"
    future = make_ca(issuer=root, common_name="future", not_before=NOW + timedelta(minutes=1))
    leaf = make_leaf(future)
    assert reason_of([leaf.cert, future.cert], bundle) == "not_yet_valid"


def test_an_expired_root(root: Issued) -> None:
    old_root = make_ca(common_name="old root", not_before=NOW - timedelta(days=9),
                       not_after=NOW - timedelta(days=2))
    leaf = make_leaf(old_root)
    assert reason_of([leaf.cert], Bundle(TD, (old_root.cert,))) == "expired"


def test_path_rules_of_rfc_5280(root: Issued, bundle: Bundle) -> None:
    # pathLenConstraint 0 on the first intermediate forbids a second one below it
    first = make_ca(issuer=root, common_name="first", path_length=0)
    second = make_ca(issuer=first, common_name="second")
    leaf = make_leaf(second)
    assert reason_of([leaf.cert, second.cert, first.cert], bundle) == "invalid_chain"
    # a "CA" that may not sign certificates
    no_sign = make_ca(issuer=root, common_name="no sign",
                      key_usage=KeyUsageBits(digital_signature=True))
    leaf = make_leaf(no_sign)
    assert reason_of([leaf.cert, no_sign.cert], bundle) == "invalid_chain"
    # an intermediate that is not a CA at all
    not_ca = make_ca(issuer=root, common_name="not a ca", ca=False)
    leaf = make_leaf(not_ca)
    assert reason_of([leaf.cert, not_ca.cert], bundle) == "invalid_chain"


def test_error_carries_category_and_code(root: Issued, bundle: Bundle) -> None:
    leaf = make_leaf(root, ca=True)
    with pytest.raises(X509SvidError) as info:
        verify_x509_svid([leaf.cert], bundle, at=NOW)
    assert info.value.code == "invalid_x509_svid"
    assert "leaf" in str(info.value)


# --- the X509Svid value ----------------------------------------------------------------------


def test_parse_round_trips_chain_and_key(root: Issued, bundle: Bundle) -> None:
    inter = make_ca(issuer=root, common_name="svid inter", not_after=NOW + timedelta(minutes=30))
    leaf = make_leaf(inter, "spiffe://example.org/w")
    svid = X509Svid.parse(pem_chain([leaf.cert, inter.cert]), leaf.key_pem)
    assert svid.spiffe_id == SpiffeId.parse("spiffe://example.org/w")
    assert svid.leaf == leaf.cert and svid.cert_chain == (leaf.cert, inter.cert)
    assert svid.expires_at == inter.cert.not_valid_after_utc  # earliest in the chain
    again = X509Svid.parse(svid.chain_pem(), svid.key_pem())
    assert again == svid
    assert b"BEGIN PRIVATE KEY" in svid.key_pem()  # PKCS#8, unencrypted
    assert verify_x509_svid(svid.cert_chain, bundle, at=NOW) == svid.spiffe_id
    assert "PRIVATE" not in repr(svid) and "private_key" not in repr(svid)


def test_parse_without_a_key(root: Issued) -> None:
    leaf = make_leaf(root)
    svid = X509Svid.parse(leaf.cert_pem)
    assert svid.private_key is None
    with pytest.raises(X509SvidError) as info:
        svid.key_pem()
    assert info.value.reason == "no_private_key"


def test_parse_rejects_a_key_of_another_certificate(root: Issued) -> None:
    leaf, other = make_leaf(root), make_leaf(root)
    with pytest.raises(X509SvidError) as info:
        X509Svid.parse(leaf.cert_pem, other.key_pem)
    assert info.value.reason == "key_mismatch"


@pytest.mark.parametrize(
    ("chain", "key", "reason"),
    [
        (b"", None, "malformed"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None, "malformed"),
        (None, b"not a key", "malformed"),
    ],
)
def test_parse_rejects_garbage(root: Issued, chain: bytes | None, key: bytes | None,
                               reason: str) -> None:
    with pytest.raises(X509SvidError) as info:
        X509Svid.parse(chain if chain is not None else make_leaf(root).cert_pem, key)
    assert info.value.reason == reason
    assert "not a key" not in str(info.value)


def test_the_constructor_checks_the_id_against_the_leaf(root: Issued) -> None:
    leaf = make_leaf(root, "spiffe://example.org/w")
    with pytest.raises(X509SvidError) as info:
        X509Svid(SpiffeId.parse("spiffe://example.org/other"), (leaf.cert,))
    assert info.value.reason == "bad_spiffe_id"
    with pytest.raises(X509SvidError):
        X509Svid(SpiffeId.parse("spiffe://example.org/w"), ())
    assert X509Svid(SpiffeId.parse("spiffe://example.org/w"), (leaf.cert,), leaf.key).leaf
