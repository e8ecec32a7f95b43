"""The X.509 certificate authority of a trust domain: it signs, and does nothing else.

Profiles: STANDARDS.md §2.2 (leaf), §2.3 (signing certificate) and §2.7 (issuance profile),
from the X509-SVID specification
(https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md).
Which key signs, and when it changes, is the business of :mod:`tabard.authority.service`.

Choices made here:

* Leaf subject is empty, so the SAN extension (one ``spiffe://`` URI, optional DNS names) is
  critical, as RFC 5280 §4.1.2.6 requires. The SPIFFE ID is the only identity in the leaf.
* CA subject is ``O=tabard, CN=tabard CA, serialNumber=<certificate serial>``: distinct per
  key, so path builders never confuse two generations of the CA of one trust domain.
* ``not_before`` is backdated by at most 10 seconds (clock skew between hosts), never before
  the CA's own ``not_before``; ``not_after`` never passes the issuing chain's ``not_after``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from tabard.authority.errors import CaCertificateError, CaExpiredError, SvidRequestError
from tabard.authority.keymanager.base import PrivateKey, PublicKey
from tabard.clock import Clock
from tabard.spiffe import SpiffeId, TrustDomain

__all__ = [
    "MAX_BACKDATE",
    "CertificateAuthority",
    "UpstreamCA",
    "X509SvidParams",
    "certificates_to_pem",
    "intermediate_signed_by_upstream",
    "issuer_path",
    "self_signed_root",
]

MAX_BACKDATE = timedelta(seconds=10)
_SECOND = timedelta(seconds=1)
_EMPTY_NAME = x509.Name([])
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*")

_LEAF_BASIC_CONSTRAINTS = x509.Extension(
    ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=False, path_length=None)
)
_LEAF_EKU = x509.Extension(
    ExtensionOID.EXTENDED_KEY_USAGE,
    False,
    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
)


def _key_usage(
    *, digital_signature: bool, key_encipherment: bool, cert_sign: bool
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


_LEAF_KU_EC = x509.Extension(
    ExtensionOID.KEY_USAGE,
    True,
    _key_usage(digital_signature=True, key_encipherment=False, cert_sign=False),
)
_LEAF_KU_RSA = x509.Extension(
    ExtensionOID.KEY_USAGE,
    True,
    _key_usage(digital_signature=True, key_encipherment=True, cert_sign=False),
)
_CA_KU = _key_usage(digital_signature=False, key_encipherment=False, cert_sign=True)


@dataclass(frozen=True, slots=True)
class X509SvidParams:
    """What one X509-SVID should say; validated on construction."""

    spiffe_id: SpiffeId
    public_key: PublicKey
    ttl: timedelta
    dns_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.spiffe_id, SpiffeId):
            raise SvidRequestError("spiffe_id must be a SpiffeId")
        if self.spiffe_id.is_trust_domain_id:
            raise SvidRequestError(
                f"{self.spiffe_id} is a trust domain ID; an X509-SVID needs a path"
            )
        if not isinstance(self.public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise SvidRequestError("the SVID public key must be an EC or RSA key")
        if self.ttl <= timedelta(0):
            raise SvidRequestError("the SVID TTL must be positive")
        for name in self.dns_names:
            if not isinstance(name, str) or len(name) > 253 or not _DNS_NAME.fullmatch(name):
                raise SvidRequestError(f"{name!r} is not a DNS name")


def _naive_utc(when: datetime) -> datetime:
    """``cryptography`` builders store naive UTC; certificates have one-second resolution."""
    return when.astimezone(UTC).replace(tzinfo=None)


def _backdated(now: datetime) -> datetime:
    """``now`` minus at most :data:`MAX_BACKDATE`, rounded up to a whole second."""
    start = now - MAX_BACKDATE
    if start.microsecond:
        start = start.replace(microsecond=0) + _SECOND
    return start


_SignHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512


def _hash_for(key: PrivateKey) -> _SignHash:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size > 384:
            return hashes.SHA512()
        if key.curve.key_size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def _spki(key: PublicKey | PrivateKey) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        key = key.public_key()
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _is_self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def issuer_path(
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    max_depth: int = 8,
) -> tuple[x509.Certificate, ...] | None:
    """The certificates from ``certificate``'s issuer up to and including an anchor, or None.

    Signatures are checked at each step; validity periods are not (this is configuration
    checking, not peer validation).
    """
    for anchor in anchors:
        if _issued_by(certificate, anchor):
            return (anchor,)
    if max_depth <= 0:
        return None
    for candidate in intermediates:
        if candidate != certificate and _issued_by(certificate, candidate):
            rest = issuer_path(candidate, intermediates, anchors, max_depth=max_depth - 1)
            if rest is not None:
                return (candidate, *rest)
    return None


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _check_signing_ca(cert: x509.Certificate, key: PrivateKey, what: str) -> None:
    constraints = _basic_constraints(cert)
    if constraints is None or not constraints.ca:
        raise CaCertificateError(f"the {what} certificate is not a CA (basicConstraints cA)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if not usage.key_cert_sign:
            raise CaCertificateError(f"the {what} certificate may not sign certificates")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaCertificateError(f"the {what} key must be an EC or RSA key")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey) or (
        _spki(public) != _spki(key)
    ):
        raise CaCertificateError(f"the {what} private key does not match its certificate")


def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public = issuer.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise CaCertificateError("the issuing CA must have an EC or RSA key") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _ca_subject(serial: int) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tabard"),
            x509.NameAttribute(NameOID.COMMON_NAME, "tabard CA"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"{serial:x}"),
        ]
    )


def _ca_extensions(
    trust_domain: TrustDomain,
    public_key: PublicKey,
    aki: x509.AuthorityKeyIdentifier,
    path_length: int | None,
) -> list[x509.Extension[x509.ExtensionType]]:
    return [
        x509.Extension(
            ExtensionOID.BASIC_CONSTRAINTS,
            True,
            x509.BasicConstraints(ca=True, path_length=path_length),
        ),
        x509.Extension(ExtensionOID.KEY_USAGE, True, _CA_KU),
        x509.Extension(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
            False,
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(trust_domain.id_string())]),
        ),
        x509.Extension(
            ExtensionOID.SUBJECT_KEY_IDENTIFIER,
            False,
            x509.SubjectKeyIdentifier.from_public_key(public_key),
        ),
        x509.Extension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, aki),
    ]


def self_signed_root(
    trust_domain: TrustDomain,
    private_key: PrivateKey,
    ttl: timedelta,
    clock: Clock,
    *,
    subject: x509.Name | None = None,
) -> x509.Certificate:
    """A self-signed CA certificate for ``trust_domain`` (STANDARDS.md §2.3, §2.7).

    SAN URI ``spiffe://<td>``, basicConstraints critical cA=true, keyUsage critical
    keyCertSign + cRLSign, SKI and AKI.
    """
    if ttl <= timedelta(0):
        raise CaCertificateError("the CA TTL must be positive")
    now = _naive_utc(clock.now())
    serial = x509.random_serial_number()
    public_key = private_key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    name = subject if subject is not None else _ca_subject(serial)
    builder = x509.CertificateBuilder(
        name,
        name,
        public_key,
        serial,
        _backdated(now),
        (now + ttl).replace(microsecond=0),
        _ca_extensions(
            trust_domain,
            public_key,
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            None,
        ),
    )
    return builder.sign(private_key, _hash_for(private_key))


def intermediate_signed_by_upstream(
    upstream_cert: x509.Certificate,
    upstream_key: PrivateKey,
    trust_domain: TrustDomain,
    public_key: PublicKey,
    ttl: timedelta,
    clock: Clock,
    *,
    subject: x509.Name | None = None,
) -> x509.Certificate:
    """A CA certificate for ``public_key`` signed by an upstream CA (STANDARDS.md §2.3).

    pathLenConstraint is 0 (it signs leaves only); ``not_after`` is capped at the upstream
    certificate's.
    """
    _check_signing_ca(upstream_cert, upstream_key, "upstream")
    constraints = _basic_constraints(upstream_cert)
    if constraints is not None and constraints.path_length == 0:
        raise CaCertificateError("the upstream certificate may not sign CA certificates")
    if ttl <= timedelta(0):
        raise CaCertificateError("the CA TTL must be positive")
    now = _naive_utc(clock.now())
    upstream_end = _naive_utc(upstream_cert.not_valid_after_utc)
    if now >= upstream_end:
        raise CaExpiredError("the upstream CA certificate has expired")
    serial = x509.random_serial_number()
    builder = x509.CertificateBuilder(
        upstream_cert.subject,
        subject if subject is not None else _ca_subject(serial),
        public_key,
        serial,
        max(_backdated(now), _naive_utc(upstream_cert.not_valid_before_utc)),
        min((now + ttl).replace(microsecond=0), upstream_end),
        _ca_extensions(trust_domain, public_key, _authority_key_identifier(upstream_cert), 0),
    )
    return builder.sign(upstream_key, _hash_for(upstream_key))


class CertificateAuthority:
    """Signs X509-SVIDs per STANDARDS.md §2.2/§2.7 with one CA key.

    Everything that does not depend on the request (issuer name, AKI, constant extensions,
    the chain tail, validity bounds) is computed once here, so a mint costs one
    ``CertificateBuilder`` construction and one signature.
    """

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        upstream_chain: Sequence[x509.Certificate] = (),
        *,
        clock: Clock,
        trust_domain: TrustDomain | None = None,
    ) -> None:
        _check_signing_ca(certificate, private_key, "CA")
        self._trust_domain = trust_domain or _trust_domain_of(certificate)
        self._certificate = certificate
        self._key = private_key
        self._clock = clock
        self._hash = _hash_for(private_key)
        self._issuer = certificate.subject
        self._aki = x509.Extension(
            ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, _authority_key_identifier(certificate)
        )
        if _is_self_signed(certificate):
            self._tail: tuple[x509.Certificate, ...] = ()
        else:
            self._tail = (certificate, *(c for c in upstream_chain if not _is_self_signed(c)))
        chain = (certificate, *upstream_chain)
        self._not_before = _naive_utc(certificate.not_valid_before_utc)
        self._not_after = min(_naive_utc(c.not_valid_after_utc) for c in chain)

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def trust_domain(self) -> TrustDomain:
        return self._trust_domain

    @property
    def chain_tail(self) -> tuple[x509.Certificate, ...]:
        """Certificates sent after each leaf: the intermediates, never the root."""
        return self._tail

    @property
    def not_after(self) -> datetime:
        """When this CA stops being able to sign (the earliest end in its chain), UTC."""
        return self._not_after.replace(tzinfo=UTC)

    def mint_x509_svid(self, params: X509SvidParams) -> tuple[x509.Certificate, ...]:
        """Leaf + intermediates (excluding the root), for ``params`` (STANDARDS.md §2.2)."""
        spiffe_id = params.spiffe_id
        if spiffe_id.trust_domain != self._trust_domain:
            raise SvidRequestError(
                f"{spiffe_id} is not in trust domain {self._trust_domain}; refusing to sign"
            )
        now = _naive_utc(self._clock.now())
        if now >= self._not_after:
            raise CaExpiredError("the signing CA has expired")
        public_key = params.public_key
        usage = _LEAF_KU_RSA if isinstance(public_key, rsa.RSAPublicKey) else _LEAF_KU_EC
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
        names.extend(x509.DNSName(name) for name in params.dns_names)
        extensions: list[x509.Extension[x509.ExtensionType]] = [
            x509.Extension(
                ExtensionOID.SUBJECT_ALTERNATIVE_NAME, True, x509.SubjectAlternativeName(names)
            ),
            _LEAF_BASIC_CONSTRAINTS,
            usage,
            _LEAF_EKU,
            x509.Extension(
                ExtensionOID.SUBJECT_KEY_IDENTIFIER,
                False,
                x509.SubjectKeyIdentifier.from_public_key(public_key),
            ),
            self._aki,
        ]
        builder = x509.CertificateBuilder(
            self._issuer,
            _EMPTY_NAME,
            public_key,
            x509.random_serial_number(),
            max(_backdated(now), self._not_before),
            min((now + params.ttl).replace(microsecond=0), self._not_after),
            extensions,
        )
        return (builder.sign(self._key, self._hash), *self._tail)


def _trust_domain_of(certificate: x509.Certificate) -> TrustDomain:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier) if san else []
    for uri in uris:
        if uri.startswith("spiffe://"):
            spiffe_id = SpiffeId.parse(uri)
            if spiffe_id.is_trust_domain_id:
                return spiffe_id.trust_domain
    raise CaCertificateError(
        "the CA certificate carries no trust domain SPIFFE ID; pass trust_domain explicitly"
    )


@dataclass(frozen=True, eq=False)
class UpstreamCA:
    """An existing CA (loaded from PEM files) that signs tabard's intermediate CA.

    ``chain`` holds the certificates above ``certificate`` that are not roots; ``roots``
    the trust anchors (taken from the self-signed certificates of the chain when not
    given). ``path_to_anchor`` runs from ``certificate`` to the anchor it chains to: the
    bundle publishes that anchor, and minted chains carry the rest.
    """

    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()
    roots: tuple[x509.Certificate, ...] = ()
    path_to_anchor: tuple[x509.Certificate, ...] = field(init=False)

    def __post_init__(self) -> None:
        _check_signing_ca(self.certificate, self.private_key, "upstream")
        constraints = _basic_constraints(self.certificate)
        if constraints is not None and constraints.path_length == 0:
            raise CaCertificateError("the upstream certificate may not sign CA certificates")
        candidates = (self.certificate, *self.chain)
        roots = self.roots or tuple(c for c in candidates if _is_self_signed(c))
        if not roots:
            raise CaCertificateError(
                "the upstream certificates end at no self-signed root; provide the upstream "
                "bundle (its root certificates)"
            )
        if self.certificate in roots:
            path: tuple[x509.Certificate, ...] = (self.certificate,)
        else:
            rest = issuer_path(self.certificate, self.chain, roots)
            if rest is None:
                raise CaCertificateError(
                    "the upstream certificate does not chain to any of the upstream roots"
                )
            path = (self.certificate, *rest)
        object.__setattr__(self, "roots", tuple(roots))
        object.__setattr__(self, "chain", tuple(c for c in self.chain if c not in roots))
        object.__setattr__(self, "path_to_anchor", path)

    @property
    def anchor(self) -> x509.Certificate:
        return self.path_to_anchor[-1]

    @classmethod
    def from_pem(
        cls,
        certificates_pem: bytes,
        key_pem: bytes,
        bundle_pem: bytes | None = None,
        *,
        key_password: bytes | None = None,
    ) -> UpstreamCA:
        """``certificates_pem``: the signing certificate first, then its chain."""
        try:
            certs = x509.load_pem_x509_certificates(certificates_pem)
            roots = x509.load_pem_x509_certificates(bundle_pem) if bundle_pem else []
        except ValueError as exc:
            raise CaCertificateError(f"unreadable upstream certificate PEM: {exc}") from exc
        try:
            key = serialization.load_pem_private_key(key_pem, password=key_password)
        except (ValueError, TypeError) as exc:
            raise CaCertificateError(
                "the upstream private key cannot be read (wrong password or not a PEM key)"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CaCertificateError("the upstream key must be an EC or RSA key")
        return cls(certs[0], key, tuple(certs[1:]), tuple(roots))

    @classmethod
    def from_files(
        cls,
        certificate_file: Path | str,
        key_file: Path | str,
        bundle_file: Path | str | None = None,
        *,
        key_password: bytes | None = None,
    ) -> UpstreamCA:
        return cls.from_pem(
            Path(certificate_file).read_bytes(),
            Path(key_file).read_bytes(),
            Path(bundle_file).read_bytes() if bundle_file is not None else None,
            key_password=key_password,
        )


def certificates_to_pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
