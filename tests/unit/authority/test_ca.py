"""The CA's issuance profile: STANDARDS.md §2.2, §2.3 and §2.7."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import VerificationError

from tabard.authority.ca import (
    MAX_BACKDATE,
    CertificateAuthority,
    UpstreamCA,
    X509SvidParams,
    intermediate_signed_by_upstream,
    self_signed_root,
)
from tabard.authority.errors import CaCertificateError, CaExpiredError, SvidRequestError
from tabard.clock import FakeClock
from tabard.errors import Invalid, Unavailable
from tabard.spiffe import SpiffeId, TrustDomain
from tests.unit.authority.conftest import TD, WORKLOAD, verify_chain


def _p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _root_ca(clock: FakeClock, ttl: timedelta = timedelta(hours=24)) -> CertificateAuthority:
    key = _p256()
    return CertificateAuthority(self_signed_root(TD, key, ttl, clock), key, clock=clock)


E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, cls: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(cls)


def test_leaf_follows_the_x509_svid_profile(clock: FakeClock) -> None:
    clock.set(datetime(2026, 3, 1, 12, 0, 0, 400_000, tzinfo=UTC))
    ca = _root_ca(clock)
    leaf_key = _p256()
    (leaf,) = ca.mint_x509_svid(X509SvidParams(WORKLOAD, leaf_key.public_key(), timedelta(hours=1)))

    san = _ext(leaf, x509.SubjectAlternativeName)
    assert san.critical  # the subject is empty
    assert leaf.subject == x509.Name([])
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [str(WORKLOAD)]
    assert len(list(san.value)) == 1

    bc = _ext(leaf, x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False

    ku = _ext(leaf, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.key_cert_sign and not ku.value.crl_sign
    assert not ku.value.key_encipherment  # EC leaf key

    eku = _ext(leaf, x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}

    ski = _ext(leaf, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key())
    aki = _ext(leaf, x509.AuthorityKeyIdentifier).value
    ca_ski = _ext(ca.certificate, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest

    assert leaf.issuer == ca.certificate.subject
    assert 0 < leaf.serial_number < 2**160
    now = clock.now()
    backdate = now - leaf.not_valid_before_utc
    assert timedelta(0) < backdate <= MAX_BACKDATE
    assert leaf.not_valid_after_utc == (now + timedelta(hours=1)).replace(microsecond=0)
    assert leaf.public_key() == leaf_key.public_key()


def test_serials_are_random(clock: FakeClock) -> None:
    ca = _root_ca(clock)
    public = _p256().public_key()
    serials = {
        ca.mint_x509_svid(X509SvidParams(WORKLOAD, public, timedelta(minutes=5)))[0].serial_number
        for _ in range(20)
    }
    assert len(serials) == 20


def test_chain_verifies_against_the_root(clock: FakeClock) -> None:
    ca = _root_ca(clock)
    chain = ca.mint_x509_svid(X509SvidParams(WORKLOAD, _p256().public_key(), timedelta(hours=1)))
    verified = verify_chain(chain, [ca.certificate], clock.now())
    assert x509.UniformResourceIdentifier(str(WORKLOAD)) in (verified.subjects or [])
    other = _root_ca(clock)
    with pytest.raises(VerificationError):
        verify_chain(chain, [other.certificate], clock.now())


def test_rsa_leaf_gets_key_encipherment_and_dns_names(clock: FakeClock) -> None:
    ca = _root_ca(clock)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    params = X509SvidParams(
        WORKLOAD, rsa_key.public_key(), timedelta(hours=1), ("api.example.org", "*.svc.local")
    )
    (leaf,) = ca.mint_x509_svid(params)
    ku = _ext(leaf, x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [str(WORKLOAD)]
    assert san.get_values_for_type(x509.DNSName) == ["api.example.org", "*.svc.local"]
    verify_chain((leaf,), [ca.certificate], clock.now())


def test_not_after_is_capped_at_the_ca(clock: FakeClock) -> None:
    ca = _root_ca(clock, ttl=timedelta(hours=2))
    clock.advance(timedelta(hours=1, minutes=30))
    (leaf,) = ca.mint_x509_svid(X509SvidParams(WORKLOAD, _p256().public_key(), timedelta(hours=1)))
    assert leaf.not_valid_after_utc == ca.certificate.not_valid_after_utc
    assert ca.not_after == ca.certificate.not_valid_after_utc


def test_not_before_never_precedes_the_ca(clock: FakeClock) -> None:
    ca = _root_ca(clock)
    (leaf,) = ca.mint_x509_svid(X509SvidParams(WORKLOAD, _p256().public_key(), timedelta(hours=1)))
    assert leaf.not_valid_before_utc >= ca.certificate.not_valid_before_utc


def test_expired_ca_refuses_to_sign(clock: FakeClock) -> None:
    ca = _root_ca(clock, ttl=timedelta(hours=1))
    clock.advance(timedelta(hours=1, seconds=1))
    with pytest.raises(CaExpiredError) as info:
        ca.mint_x509_svid(X509SvidParams(WORKLOAD, _p256().public_key(), timedelta(hours=1)))
    assert isinstance(info.value, Unavailable)


@pytest.mark.parametrize(
    "spiffe_id",
    ["spiffe://example.org", "spiffe://other.org/agent/x"],
    ids=["trust-domain-id", "foreign-trust-domain"],
)
def test_refuses_ids_it_may_not_sign(clock: FakeClock, spiffe_id: str) -> None:
    ca = _root_ca(clock)
    with pytest.raises(SvidRequestError) as info:
        ca.mint_x509_svid(
            X509SvidParams(SpiffeId.parse(spiffe_id), _p256().public_key(), timedelta(hours=1))
        )
    assert isinstance(info.value, Invalid)
    assert info.value.code == "invalid_svid_request"


@pytest.mark.parametrize(
    ("ttl", "dns"),
    [(timedelta(0), ()), (timedelta(seconds=-1), ()), (timedelta(hours=1), ("bad name",)),
     (timedelta(hours=1), ("-x.example",)), (timedelta(hours=1), ("",))],
)
def test_params_are_validated(ttl: timedelta, dns: tuple[str, ...]) -> None:
    with pytest.raises(SvidRequestError):
        X509SvidParams(WORKLOAD, _p256().public_key(), ttl, dns)


def test_params_refuse_other_key_types() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    with pytest.raises(SvidRequestError):
        X509SvidParams(
            WORKLOAD,
            ed25519.Ed25519PrivateKey.generate().public_key(),  # type: ignore[arg-type]
            timedelta(hours=1),
        )


def test_root_follows_the_signing_certificate_profile(clock: FakeClock) -> None:
    key = _p256()
    root = self_signed_root(TD, key, timedelta(hours=24), clock)
    assert root.issuer == root.subject
    root.verify_directly_issued_by(root)
    bc = _ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = _ext(root, x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    san = _ext(root, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org"]
    assert _ext(root, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    )
    assert root.not_valid_after_utc == (clock.now() + timedelta(hours=24)).replace(microsecond=0)
    assert root.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == (
        f"{root.serial_number:x}"
    )
    second = self_signed_root(TD, _p256(), timedelta(hours=24), clock)
    assert second.subject != root.subject  # two CA generations never share a name


def test_p384_ca_signs_with_sha384(clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    root = self_signed_root(TD, key, timedelta(hours=2), clock)
    ca = CertificateAuthority(root, key, clock=clock)
    chain = ca.mint_x509_svid(X509SvidParams(WORKLOAD, _p256().public_key(), timedelta(hours=1)))
    assert chain[0].signature_hash_algorithm is not None
    assert chain[0].signature_hash_algorithm.name == "sha384"
    verify_chain(chain, [ca.certificate], clock.now())


def test_ca_refuses_mismatched_or_non_ca_material(clock: FakeClock) -> None:
    key = _p256()
    root = self_signed_root(TD, key, timedelta(hours=24), clock)
    with pytest.raises(CaCertificateError, match="does not match"):
        CertificateAuthority(root, _p256(), clock=clock)
    ca = CertificateAuthority(root, key, clock=clock)
    (leaf,) = ca.mint_x509_svid(X509SvidParams(WORKLOAD, key.public_key(), timedelta(hours=1)))
    with pytest.raises(CaCertificateError, match="not a CA"):
        CertificateAuthority(leaf, key, clock=clock)


def test_ca_reads_its_trust_domain_from_the_certificate(clock: FakeClock) -> None:
    ca = _root_ca(clock)
    assert ca.trust_domain == TD
    key = _p256()
    other = CertificateAuthority(
        self_signed_root(TD, key, timedelta(hours=1), clock),
        key,
        clock=clock,
        trust_domain=TrustDomain("other.org"),
    )
    assert other.trust_domain == TrustDomain("other.org")


def _ca_cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    clock: FakeClock,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> x509.Certificate:
    """A CA certificate of an organisation PKI that tabard does not own."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    now = clock.now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(signing_key, hashes.SHA256())
    )


def _upstream_pki(clock: FakeClock) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _p256()
    return _ca_cert("Upstream Root", key, clock), key


def test_intermediate_mode_chains_to_the_upstream_root(clock: FakeClock) -> None:
    root, root_key = _upstream_pki(clock)
    ca_key = _p256()
    intermediate = intermediate_signed_by_upstream(
        root, root_key, TD, ca_key.public_key(), timedelta(hours=24), clock
    )
    assert intermediate.issuer == root.subject
    bc = _ext(intermediate, x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    ca = CertificateAuthority(intermediate, ca_key, clock=clock)
    chain = ca.mint_x509_svid(X509SvidParams(WORKLOAD, _p256().public_key(), timedelta(hours=1)))
    assert chain[1:] == (intermediate,)  # the root is never sent
    verify_chain(chain, [root], clock.now())
    with pytest.raises(VerificationError):
        verify_chain(chain, [intermediate], clock.now() + timedelta(days=2))


def test_intermediate_is_capped_at_the_upstream_end(clock: FakeClock) -> None:
    root, root_key = _upstream_pki(clock)
    intermediate = intermediate_signed_by_upstream(
        root, root_key, TD, _p256().public_key(), timedelta(days=3650), clock
    )
    assert intermediate.not_valid_after_utc == root.not_valid_after_utc


def test_upstream_refuses_a_key_that_is_not_its_own(clock: FakeClock) -> None:
    root, _ = _upstream_pki(clock)
    with pytest.raises(CaCertificateError):
        intermediate_signed_by_upstream(
            root, _p256(), TD, _p256().public_key(), timedelta(hours=24), clock
        )
    with pytest.raises(CaCertificateError):
        UpstreamCA(root, _p256())


def test_upstream_ca_finds_its_path_to_the_anchor(clock: FakeClock) -> None:
    root, root_key = _upstream_pki(clock)
    mid_key = _p256()
    mid = intermediate_signed_by_upstream(
        root, root_key, TrustDomain("corp.example"), mid_key.public_key(), timedelta(days=30), clock
    )
    # path_length=0 on ``mid`` forbids it from signing further CAs
    with pytest.raises(CaCertificateError, match="may not sign CA"):
        UpstreamCA(mid, mid_key, chain=(root,))
    upstream = UpstreamCA(root, root_key)
    assert upstream.roots == (root,)
    assert upstream.path_to_anchor == (root,)
    assert upstream.anchor == root


def test_two_level_upstream_sends_every_intermediate(clock: FakeClock) -> None:
    root, root_key = _upstream_pki(clock)
    issuing_key = _p256()
    issuing = _ca_cert("Upstream Issuing CA", issuing_key, clock, issuer=(root, root_key))
    unrelated = _ca_cert("Unrelated", _p256(), clock)
    upstream = UpstreamCA(issuing, issuing_key, chain=(unrelated, root))
    assert upstream.roots == (unrelated, root)  # self-signed certificates become the roots
    assert upstream.chain == ()
    assert upstream.path_to_anchor == (issuing, root)
    ca_key = _p256()
    intermediate = intermediate_signed_by_upstream(
        issuing, issuing_key, TD, ca_key.public_key(), timedelta(hours=24), clock
    )
    ca = CertificateAuthority(intermediate, ca_key, upstream.path_to_anchor, clock=clock)
    chain = ca.mint_x509_svid(X509SvidParams(WORKLOAD, _p256().public_key(), timedelta(hours=1)))
    assert chain[1:] == (intermediate, issuing)
    verify_chain(chain, [root], clock.now())
    with pytest.raises(CaCertificateError, match="does not chain"):
        UpstreamCA(issuing, issuing_key, roots=(unrelated,))


def test_upstream_from_pem_requires_a_root(clock: FakeClock) -> None:
    root, root_key = _upstream_pki(clock)
    key_pem = root_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    cert_pem = root.public_bytes(serialization.Encoding.PEM)
    upstream = UpstreamCA.from_pem(cert_pem, key_pem, key_password=b"pw")
    assert upstream.anchor == root
    with pytest.raises(CaCertificateError, match="private key cannot be read"):
        UpstreamCA.from_pem(cert_pem, key_pem, key_password=b"wrong")
    with pytest.raises(CaCertificateError, match="unreadable"):
        UpstreamCA.from_pem(b"not pem", key_pem, key_password=b"pw")
