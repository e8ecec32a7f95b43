"""X509-SVIDs: the certificate-chain form of a SPIFFE identity, and its validation.

Spec: https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md (STANDARDS.md §2).
:func:`verify_x509_svid` follows §2.5: exactly one URI SAN, a SPIFFE ID with a path, the
bundle of *that* trust domain only (never a merged pool), RFC 5280 path validation to one of
its X.509 authorities, then the leaf rules.

Path validation is ``cryptography.x509.verification`` (a client verifier over a ``Store`` of
the bundle's authorities), which accepts SPIFFE certificates as they are: empty subject with
a critical SAN, URI-only SAN. Its Web PKI extension policies are relaxed in three places,
each listed in ``tests/conformance/deviations.py``: a leaf need not carry an authority key
identifier, and neither leaf nor CA extended key usage is enforced (the SPIFFE spec asks
validators to accept any EKU). Everything else in that profile stays, so certificates the
Web PKI rules reject (RSA keys under 2048 bits, an empty issuer, a CA without keyUsage,
URI name constraints, which the library does not implement) are rejected here too.

The leaf rules and the validity of the leaf are checked in Python before path validation, so
each rejection carries its own stable ``reason``; when the verifier itself rejects the chain,
a short walk over the presented certificates and the bundle names the cause. That walk runs
on failures only: the success path is one native verification plus a few attribute reads.

:class:`X509SvidCache` keeps verified chains (by SHA-256 of their DER) for a caller that
sees the same client certificates on every request (the gateway's mTLS): a hit skips the
parse and the path validation, but only while the bundle still serves the very same set of
authorities and the validation time is inside every presented and anchor certificate's
validity.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from tabard.spiffe.bundle import Bundle, BundleSource
from tabard.spiffe.errors import SpiffeIdError, X509SvidError
from tabard.spiffe.id import SpiffeId

__all__ = [
    "PrivateKey",
    "X509Svid",
    "X509SvidCache",
    "verify_x509_svid",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

MAX_CHAIN_DEPTH = 8
"""Longest accepted path, intermediates and anchor included (the library's default)."""

# The Web PKI profile minus what SPIFFE does not require (see the module docstring).
_EE_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
)


# The same few IDs come back on every handshake; parsing one is pure, so it is memoised.
_parse_id = functools.lru_cache(maxsize=1024)(SpiffeId.parse)


def _fail(message: str, reason: str) -> NoReturn:
    raise X509SvidError(message, reason=reason)


def _spiffe_id_of(leaf: x509.Certificate) -> SpiffeId:
    """STANDARDS.md §2.5 steps 2 and 3: the one URI SAN, as a SPIFFE ID with a path."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        _fail("the leaf certificate has no URI SAN", "no_uri_san")
    except ValueError as exc:  # duplicate or undecodable extensions
        raise X509SvidError(
            f"the leaf certificate's extensions do not parse: {exc}", reason="invalid_chain"
        ) from exc
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if not uris:
        _fail("the leaf certificate has no URI SAN", "no_uri_san")
    if len(uris) > 1:
        _fail(f"the leaf certificate has {len(uris)} URI SANs, not one", "multiple_uri_sans")
    try:
        spiffe_id = _parse_id(uris[0])
    except SpiffeIdError as exc:
        raise X509SvidError(
            f"the URI SAN is not a SPIFFE ID: {exc}", reason="bad_spiffe_id"
        ) from exc
    if spiffe_id.is_trust_domain_id:
        _fail(f"{spiffe_id} has no path; only a workload SVID identifies a caller", "no_path")
    return spiffe_id


def _check_leaf(leaf: x509.Certificate, at: datetime) -> None:
    """STANDARDS.md §2.5 step 6 (and §2.2 digitalSignature) plus the leaf's validity."""
    extensions = leaf.extensions
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        pass
    else:
        if constraints.ca:
            _fail("the leaf certificate is a CA (basicConstraints cA=true)", "leaf_is_ca")
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        _fail("the leaf certificate has no keyUsage", "bad_key_usage")
    if usage.key_cert_sign or usage.crl_sign:
        _fail("a leaf certificate must not assert keyCertSign or cRLSign", "bad_key_usage")
    if not usage.digital_signature:
        _fail("the leaf certificate does not assert digitalSignature", "bad_key_usage")
    _check_validity(leaf, at, "the leaf certificate")


def _check_validity(cert: x509.Certificate, at: datetime, what: str) -> None:
    if at > cert.not_valid_after_utc:
        _fail(f"{what} expired at {cert.not_valid_after_utc.isoformat()}", "expired")
    if at < cert.not_valid_before_utc:
        _fail(f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}",
              "not_yet_valid")


# One ``Store`` per set of X.509 authorities. A bundle's authorities are an immutable tuple,
# so the tuple object is the key; the entry keeps it alive, so its ``id`` cannot be reused.
_STORE_CACHE_SIZE = 64
_stores: dict[int, tuple[tuple[x509.Certificate, ...], Store]] = {}
_stores_lock = threading.Lock()


def _store_for(bundle: Bundle) -> Store:
    authorities = bundle.x509_authorities
    entry = _stores.get(id(authorities))
    if entry is not None and entry[0] is authorities:
        return entry[1]
    store = Store(list(authorities))
    with _stores_lock:
        if len(_stores) >= _STORE_CACHE_SIZE:
            _stores.pop(next(iter(_stores)))
        _stores[id(authorities)] = (authorities, store)
    return store


def verify_x509_svid(
    chain: Sequence[x509.Certificate], bundles: BundleSource, *, at: datetime
) -> SpiffeId:
    """Validate an X509-SVID chain (leaf first) per STANDARDS.md §2.5 and return its ID.

    ``bundles`` is asked for the bundle of the leaf's trust domain only; ``at`` is the
    validation time (a naive value is taken as UTC). Raises :class:`X509SvidError` whose
    ``reason`` is one of ``empty_chain``, ``no_uri_san``, ``multiple_uri_sans``,
    ``bad_spiffe_id``, ``no_path``, ``untrusted_trust_domain``, ``leaf_is_ca``,
    ``bad_key_usage``, ``expired``, ``not_yet_valid``, ``unknown_authority``,
    ``bad_signature`` or ``invalid_chain`` (the path breaks an RFC 5280 or profile rule:
    a CA without keyCertSign, a path length exceeded, an unsupported name constraint...).
    """
    if not chain:
        _fail("no certificates were presented", "empty_chain")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    leaf = chain[0]
    spiffe_id = _spiffe_id_of(leaf)
    bundle = bundles.get_bundle_for_trust_domain(spiffe_id.trust_domain)
    if bundle is None:
        _fail(f"no bundle for trust domain {spiffe_id.trust_domain}", "untrusted_trust_domain")
    _check_leaf(leaf, at)
    if not bundle.x509_authorities:
        _fail(f"trust domain {spiffe_id.trust_domain} has no X.509 authorities",
              "unknown_authority")
    intermediates = list(chain[1:])
    verifier = (
        PolicyBuilder()
        .store(_store_for(bundle))
        .time(at)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise _diagnose(leaf, intermediates, bundle.x509_authorities, at, exc) from exc
    return spiffe_id


def _key_id_matches(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """False only when both key identifiers are present and differ (RFC 5280 §4.2.1.1)."""
    try:
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except (x509.ExtensionNotFound, ValueError):
        return True
    return aki.key_identifier is None or aki.key_identifier == ski.digest


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _diagnose(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    error: VerificationError,
) -> X509SvidError:
    """Name why the verifier refused the chain; only ever called after it did.

    Walks up from the leaf by issuer name and key identifier. No candidate issuer: the
    chain does not reach the bundle (``unknown_authority``). Candidates whose signature does
    not verify: ``bad_signature``. An expired or not-yet-valid certificate on the way:
    ``expired``/``not_yet_valid``. A walk that reaches an authority: the path broke a
    profile rule the verifier enforces (``invalid_chain``, with the verifier's words).
    """
    anchors = set(roots)
    pool = [*intermediates, *roots]
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        candidates = [
            c for c in pool
            if c is not current and c.subject == current.issuer and _key_id_matches(current, c)
        ]
        if not candidates:
            return X509SvidError(
                "the chain does not lead to an X.509 authority of the trust domain",
                reason="unknown_authority",
            )
        issuer = next((c for c in candidates if _signed_by(current, c)), None)
        if issuer is None:
            return X509SvidError(
                "a certificate's signature does not verify with its issuer's key",
                reason="bad_signature",
            )
        what = "the X.509 authority" if issuer in anchors else "an intermediate certificate"
        try:
            _check_validity(issuer, at, what)
        except X509SvidError as exc:
            return exc
        if issuer in anchors:
            break
        current = issuer
    detail = str(error).removeprefix("validation failed: ")
    return X509SvidError(f"the certificate path is not valid: {detail}", reason="invalid_chain")


@dataclass(frozen=True)
class X509Svid:
    """An X509-SVID (STANDARDS.md §2): SPIFFE ID, chain (leaf first), optional private key.

    The constructor checks that the leaf carries ``spiffe_id`` as its one URI SAN and that
    the key, if given, belongs to the leaf. It does not validate the chain against a bundle:
    that is :func:`verify_x509_svid`'s job.
    """

    spiffe_id: SpiffeId
    cert_chain: tuple[x509.Certificate, ...]
    private_key: PrivateKey | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.cert_chain:
            _fail("an X509-SVID needs at least its leaf certificate", "empty_chain")
        object.__setattr__(self, "cert_chain", tuple(self.cert_chain))
        if _spiffe_id_of(self.cert_chain[0]) != self.spiffe_id:
            _fail(f"the leaf certificate does not carry {self.spiffe_id}", "bad_spiffe_id")
        if self.private_key is not None:
            if not isinstance(self.private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                _fail("the private key must be an EC or RSA key", "key_mismatch")
            if _spki(self.private_key.public_key()) != _spki(self.leaf.public_key()):
                _fail("the private key does not belong to the leaf certificate",
                      "key_mismatch")

    @property
    def leaf(self) -> x509.Certificate:
        return self.cert_chain[0]

    @property
    def expires_at(self) -> datetime:
        """When the SVID stops being usable: the earliest ``notAfter`` in its chain (UTC)."""
        return min(cert.not_valid_after_utc for cert in self.cert_chain)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.cert_chain)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM, for writing ``svid.key`` (mode 0600)."""
        if self.private_key is None:
            _fail("this X509-SVID carries no private key", "no_private_key")
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def parse(cls, chain_pem: bytes, key_pem: bytes | None = None) -> X509Svid:
        """Load a PEM chain (leaf first) and optionally its unencrypted PEM private key."""
        try:
            certs = x509.load_pem_x509_certificates(chain_pem)
        except ValueError as exc:
            raise X509SvidError(
                "the chain is not PEM certificates", reason="malformed"
            ) from exc
        key: PrivateKey | None = None
        if key_pem is not None:
            try:
                loaded = serialization.load_pem_private_key(key_pem, password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                # never chain the original error: its text may quote the key material
                raise X509SvidError(
                    "the private key is not an unencrypted PEM key", reason="malformed"
                ) from None
            if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                _fail("the private key must be an EC or RSA key", "key_mismatch")
            key = loaded
        return cls(_spiffe_id_of(certs[0]), tuple(certs), key)


def _spki(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# A verified chain: its ID, the authorities it was validated against, and the span in which
# every presented certificate and every anchor is valid.
_VerifiedChain = tuple[SpiffeId, tuple[x509.Certificate, ...], datetime, datetime]


class X509SvidCache:
    """:func:`verify_x509_svid` over DER chains (leaf first) with a bounded LRU cache of
    verified chains keyed by their SHA-256 (module docstring). A hit re-checks that the
    bundle served now for the ID's trust domain holds the same authorities object (a new
    bundle, e.g. after a rotation, means a fresh validation) and that ``at`` is inside the
    validity of every certificate involved. Failures are never cached."""

    def __init__(self, *, size: int = 10_000) -> None:
        if size < 0:
            raise ValueError("size must not be negative")
        self._size = size
        self._cache: OrderedDict[bytes, _VerifiedChain] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def verify(self, chain_der: Sequence[bytes], bundles: BundleSource, *, at: datetime
               ) -> SpiffeId:
        """The chain's SPIFFE ID; :class:`X509SvidError`, or ``ValueError`` for DER that
        does not parse."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        digest = hashlib.sha256()
        for der in chain_der:
            digest.update(len(der).to_bytes(4, "big"))
            digest.update(der)
        key = digest.digest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            spiffe_id, authorities, not_before, not_after = hit
            bundle = bundles.get_bundle_for_trust_domain(spiffe_id.trust_domain)
            if (bundle is not None and bundle.x509_authorities is authorities
                    and not_before <= at <= not_after):
                return spiffe_id
            with self._lock:
                self._cache.pop(key, None)
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
        spiffe_id = verify_x509_svid(chain, bundles, at=at)
        bundle = bundles.get_bundle_for_trust_domain(spiffe_id.trust_domain)
        if self._size and bundle is not None:
            involved = [*chain, *bundle.x509_authorities]
            entry = (spiffe_id, bundle.x509_authorities,
                     max(c.not_valid_before_utc for c in involved),
                     min(c.not_valid_after_utc for c in involved))
            with self._lock:
                self._cache[key] = entry
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return spiffe_id
