"""Authority budgets: X509-SVID minting and JWT-SVID validation (ARCHITECTURE.md §8).

Baselines, measured in the same run on the same keys:
* minting — a raw ``cryptography`` CertificateBuilder building and signing an equivalent leaf
  (same extensions, same CA key, caller-supplied public key);
* validation — one raw P-256 ECDSA verify of the token's signature with ``cryptography``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.fakes.authority_store import InMemoryAuthorityStore

from bench.harness import Figure, compare_rates
from tabard.authority import Authority, KeyType, MemoryKeyManager
from tabard.clock import SystemClock
from tabard.spiffe import SpiffeId, TrustDomain
from tabard.spiffe.jwtsvid import JwtSvidValidator, verify_jwt_svid

TD = TrustDomain("bench.example")
WORKLOAD = SpiffeId.parse("spiffe://bench.example/agent/bench/instance/1")


def _authority() -> tuple[Authority, MemoryKeyManager]:
    keys = MemoryKeyManager()
    authority = Authority(TD, keys, InMemoryAuthorityStore(), SystemClock(),
                          key_type=KeyType.EC_P256)
    authority.ensure_initialized()
    return authority, keys


def _raw_leaf_builder(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                      public_key: ec.EllipticCurvePublicKey) -> Callable[[], x509.Certificate]:
    """The same leaf tabard mints, built the plain way with ``cryptography``."""
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

    def build() -> x509.Certificate:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(seconds=10))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(str(WORKLOAD))]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(aki, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )

    return build


def run() -> list[Figure]:
    authority, keys = _authority()
    leaf_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    minted = authority.mint_x509_svid(WORKLOAD, public_key=leaf_key)
    ca_cert = minted.chain[-1] if len(minted.chain) > 1 else authority.bundle().x509_authorities[0]
    record = authority.active_authority("x509")
    assert record is not None
    ca_key = keys.private_key(record.key_id)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    raw = _raw_leaf_builder(ca_cert, ca_key, leaf_key)
    mint_rate, raw_mint = compare_rates(
        lambda: authority.mint_x509_svid(WORKLOAD, public_key=leaf_key), raw)

    token = authority.mint_jwt_svid(WORKLOAD, ["bench"], ttl=timedelta(minutes=30))
    bundle = authority.bundle()
    kid_key = bundle.jwt_authorities[0].public_key
    assert isinstance(kid_key, ec.EllipticCurvePublicKey)
    signing_input, _, sig_b64 = token.rpartition(".")
    raw_sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    der = encode_dss_signature(int.from_bytes(raw_sig[:32], "big"),
                               int.from_bytes(raw_sig[32:], "big"))
    data = signing_input.encode()

    def raw_verify() -> None:
        kid_key.verify(der, data, ec.ECDSA(hashes.SHA256()))

    now = datetime.now(UTC).timestamp()
    cold_rate, raw_verify_rate = compare_rates(
        lambda: verify_jwt_svid(token, bundle, "bench", now=now), raw_verify)
    validator = JwtSvidValidator(bundle, clock=SystemClock())
    validator.validate(token, "bench")
    cached_rate, raw_verify_rate2 = compare_rates(
        lambda: validator.validate(token, "bench"), raw_verify)

    return [
        Figure("X509-SVID minting (in-process)", mint_rate, "ops/s",
               "raw cryptography build+sign", raw_mint, "≥ 0.8×", goal_ratio=0.8),
        Figure("JWT-SVID validation, cold", cold_rate, "ops/s", "raw P-256 verify",
               raw_verify_rate, "≥ 0.8×", goal_ratio=0.8),
        Figure("JWT-SVID validation, verified-token cache", cached_rate, "ops/s",
               "raw P-256 verify", raw_verify_rate2, "≥ 20×", goal_ratio=20.0),
    ]
