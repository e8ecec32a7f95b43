"""Test PKI: CA and leaf certificates and JWT-SVIDs built directly with ``cryptography``/PyJWT.

Independent of ``tabard.authority`` on purpose, so validation is tested against credentials
the code under test did not produce. Every knob needed to build a deliberately broken
credential (CA leaf, two URI SANs, wrong key usage, bad signature, forbidden JOSE headers,
``alg: none``, HMAC keyed with a public key) is a parameter here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime(2026, 1, 1, tzinfo=UTC)
"""The default test instant; equal to ``FakeClock()``'s start."""

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

def new_key(kind: str = "ec256") -> PrivateKey:
    """A fresh key: ``ec256``, ``ec384``, ``ec521`` or ``rsa2048``/``rsa3072``."""
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ec521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    raise ValueError(kind)


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class KeyUsageBits:
    digital_signature: bool = False
    key_encipherment: bool = False
    key_agreement: bool = False
    key_cert_sign: bool = False
    crl_sign: bool = False

    def extension(self) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=self.digital_signature,
            content_commitment=False,
            key_encipherment=self.key_encipherment,
            data_encipherment=False,
            key_agreement=self.key_agreement,
            key_cert_sign=self.key_cert_sign,
            crl_sign=self.crl_sign,
            encipher_only=False,
            decipher_only=False,
        )


CA_USAGE = KeyUsageBits(key_cert_sign=True, crl_sign=True)
LEAF_USAGE = KeyUsageBits(digital_signature=True)


@dataclass
class CertSpec:
    """Everything that goes into one certificate; defaults give a well-formed SPIFFE CA."""

    uris: Sequence[str] = ()
    dns: Sequence[str] = ()
    subject: x509.Name | None = None
    ca: bool = True
    path_length: int | None = None
    basic_constraints: bool = True
    key_usage: KeyUsageBits | None = CA_USAGE
    eku: Sequence[x509.ObjectIdentifier] | None = None
    not_before: datetime = field(default_factory=lambda: NOW - timedelta(days=1))
    not_after: datetime = field(default_factory=lambda: NOW + timedelta(days=30))
    name_constraints: x509.NameConstraints | None = None
    subject_key_id: bool = True
    authority_key_id: bool = True


def _build(
    spec: CertSpec, key: PrivateKey, issuer: Issued | None, sign_key: PrivateKey | None = None
) -> x509.Certificate:
    subject = spec.subject if spec.subject is not None else x509.Name([])
    issuer_name = issuer.cert.subject if issuer is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
    )
    if spec.basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length if spec.ca else None),
            critical=True,
        )
    if spec.key_usage is not None:
        builder = builder.add_extension(spec.key_usage.extension(), critical=True)
    if spec.eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.eku)), critical=False)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in spec.uris]
    names += [x509.DNSName(d) for d in spec.dns]
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=len(subject) == 0
        )
    if spec.name_constraints is not None:
        builder = builder.add_extension(spec.name_constraints, critical=True)
    if spec.subject_key_id:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    parent_key = issuer.key if issuer is not None else key
    if spec.authority_key_id:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent_key.public_key()),
            critical=False,
        )
    signer = sign_key or parent_key
    return builder.sign(signer, _hash_for(signer))


def make_ca(
    trust_domain: str = "example.org",
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    common_name: str | None = None,
    sign_key: PrivateKey | None = None,
    **overrides: Any,
) -> Issued:
    """A self-signed root (``issuer=None``) or an intermediate CA with SAN ``spiffe://<td>``.

    ``sign_key`` signs with some other key (a certificate whose signature does not verify).
    """
    key = key or new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tabard tests"),
            x509.NameAttribute(
                NameOID.COMMON_NAME,
                common_name or f"{trust_domain} {'intermediate' if issuer else 'root'} CA",
            ),
        ]
    )
    overrides.setdefault("uris", [f"spiffe://{trust_domain}"])
    overrides.setdefault("subject", name)
    spec = CertSpec(**overrides)
    return Issued(_build(spec, key, issuer, sign_key), key)


def make_leaf(
    issuer: Issued,
    spiffe_id: str | None = "spiffe://example.org/workload",
    *,
    key: PrivateKey | None = None,
    sign_key: PrivateKey | None = None,
    **overrides: Any,
) -> Issued:
    """A SPIFFE leaf (empty subject, critical SAN, CA=false, digitalSignature, EKU both).

    ``sign_key`` signs with a key other than the issuer's, leaving the issuer name in place:
    a certificate whose signature does not verify.
    """
    key = key or new_key()
    overrides.setdefault("uris", [spiffe_id] if spiffe_id is not None else [])
    overrides.setdefault("ca", False)
    overrides.setdefault("key_usage", LEAF_USAGE)
    overrides.setdefault(
        "eku", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    overrides.setdefault("not_after", NOW + timedelta(hours=1))
    spec = CertSpec(**overrides)
    return Issued(_build(spec, key, issuer, sign_key), key)


def pem_chain(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# --- JWT-SVIDs ------------------------------------------------------------------------------


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_claims(
    sub: str = "spiffe://example.org/workload",
    aud: str | list[str] | None = "spiffe://example.org/service",
    *,
    now: datetime = NOW,
    ttl: float = 300,
    **extra: Any,
) -> dict[str, Any]:
    """Standard JWT-SVID claims; ``aud=None`` leaves ``aud`` out, extra kwargs are added."""
    claims: dict[str, Any] = {"sub": sub, "exp": int(now.timestamp() + ttl),
                              "iat": int(now.timestamp())}
    if aud is not None:
        claims["aud"] = aud
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def sign_jwt(
    claims: Mapping[str, Any],
    key: PrivateKey,
    *,
    kid: str | None = "kid-1",
    alg: str = "ES256",
    typ: str | None = "JWT",
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign with PyJWT; ``headers`` adds (possibly forbidden) JOSE header parameters."""
    hdr: dict[str, Any] = dict(headers or {})
    if kid is not None:
        hdr["kid"] = kid
    hdr["typ"] = typ  # PyJWT drops a falsy ``typ``
    return jwt.encode(dict(claims), key, algorithm=alg, headers=hdr)


def sign_raw(
    header: Mapping[str, Any], claims: Mapping[str, Any] | bytes, key: PrivateKey, *, alg: str
) -> str:
    """Sign an arbitrary header and payload (no checks at all), ``alg`` naming the algorithm."""
    body = claims if isinstance(claims, bytes) else json.dumps(dict(claims)).encode()
    signing_input = (
        _b64u(json.dumps(dict(header), separators=(",", ":")).encode()) + "." + _b64u(body)
    )
    algorithm = jwt.get_algorithm_by_name(alg)
    signature = algorithm.sign(signing_input.encode(), key)
    return signing_input + "." + _b64u(signature)


def unsigned_token(claims: Mapping[str, Any], *, kid: str = "kid-1") -> str:
    """``alg: none`` with an empty signature."""
    header = {"alg": "none", "kid": kid, "typ": "JWT"}
    return (
        _b64u(json.dumps(header).encode()) + "." + _b64u(json.dumps(dict(claims)).encode()) + "."
    )


def hmac_with_public_key(claims: Mapping[str, Any], key: PrivateKey, *, kid: str = "kid-1") -> str:
    """HS256 keyed with the PEM of the *public* key: the classic algorithm-confusion attack."""
    secret = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
    signing_input = (
        _b64u(json.dumps(header).encode()) + "." + _b64u(json.dumps(dict(claims)).encode())
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64u(mac)


def tamper_signature(token: str) -> str:
    """Flip one bit in the middle of the signature."""
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{_b64u(bytes(raw))}"

