"""Signed checkpoints: the tree head of the audit log, signed by the audit key.

A checkpoint is a JWS (RFC 7515, compact serialisation) whose payload is the RFC 8785 JSON
``{"v": 1, "trust_domain", "tree_size", "root_hash", "head_hash", "time"}`` and whose
protected header carries ``alg``, ``typ`` (:data:`CHECKPOINT_TYPE`) and ``x5c``: the
X509-SVID of ``spiffe://<trust domain>/tabard/audit`` with its intermediates. The audit key
is a P-256 key that lives only in the server's memory; the trust domain's CA certifies it
like any workload, so a checkpoint verifies **offline with the trust bundle alone**: the
chain is validated as an X509-SVID against the bundle at the checkpoint's time, the SPIFFE ID
must be the audit identity of the checkpoint's trust domain, and the leaf key must verify
the signature. A new key and SVID are made whenever the SVID has run half its life, so a
stolen server key is useless for long, and old checkpoints keep verifying (their chain rides
along) as long as the bundle still holds the CA that signed it.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.audit.errors import CheckpointError
from tabard.audit.record import canonical_json, format_time, parse_time
from tabard.authority import MintedX509Svid, PublicKey
from tabard.clock import Clock
from tabard.spiffe import BundleSource, SpiffeId, TrustDomain, X509SvidError, verify_x509_svid

__all__ = [
    "AUDIT_PATH",
    "CHECKPOINT_TYPE",
    "AuditSigner",
    "Checkpoint",
    "SvidMinter",
    "audit_spiffe_id",
    "verify_checkpoint",
]

AUDIT_PATH = "/tabard/audit"
CHECKPOINT_TYPE = "tabard-audit-checkpoint+jws"
_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "PS256"]


def audit_spiffe_id(trust_domain: TrustDomain) -> SpiffeId:
    """``spiffe://<td>/tabard/audit``: the identity whose key signs checkpoints."""
    return SpiffeId.parse(f"spiffe://{trust_domain.name}{AUDIT_PATH}")


class SvidMinter(Protocol):
    """The trust domain's authority, as the audit key needs it (:class:`~tabard.authority.
    Authority` is one)."""

    def mint_x509_svid(self, spiffe_id: SpiffeId, public_key: PublicKey | None = None,
                       ttl: timedelta | None = None, dns_names: Any = ()) -> MintedX509Svid:
        ...


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified (or freshly signed) checkpoint."""

    trust_domain: str
    tree_size: int
    root_hash: bytes
    head_hash: bytes
    time: datetime
    document: str

    def body(self) -> dict[str, Any]:
        return {"v": 1, "trust_domain": self.trust_domain, "tree_size": self.tree_size,
                "root_hash": self.root_hash.hex(), "head_hash": self.head_hash.hex(),
                "time": format_time(self.time)}

    def to_json(self) -> dict[str, Any]:
        """The file form: the signed fields for people, the JWS for verifiers."""
        return self.body() | {"jws": self.document}


class AuditSigner:
    """Signs checkpoints with the audit key, renewing key and SVID at half-life."""

    def __init__(self, minter: SvidMinter, trust_domain: TrustDomain, clock: Clock, *,
                 ttl: timedelta | None = None) -> None:
        self._minter = minter
        self._id = audit_spiffe_id(trust_domain)
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._x5c: list[str] = []
        self._renew_at: datetime | None = None

    @property
    def spiffe_id(self) -> SpiffeId:
        return self._id

    def _current(self) -> tuple[ec.EllipticCurvePrivateKey, list[str]]:
        with self._lock:
            now = self._clock.now()
            if self._key is None or self._renew_at is None or now >= self._renew_at:
                key = ec.generate_private_key(ec.SECP256R1())
                svid = self._minter.mint_x509_svid(self._id, key.public_key(), self._ttl)
                leaf = svid.chain[0]
                start = leaf.not_valid_before_utc
                self._renew_at = start + (leaf.not_valid_after_utc - start) / 2
                self._key = key
                self._x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER))
                             .decode() for c in svid.chain]
            return self._key, self._x5c

    def sign(self, trust_domain: str, tree_size: int, root_hash: bytes, head_hash: bytes
             ) -> Checkpoint:
        key, x5c = self._current()
        at = self._clock.now()
        cp = Checkpoint(trust_domain, tree_size, root_hash, head_hash,
                        parse_time(format_time(at)), "")
        payload = canonical_json(cp.body())
        document = jwt.api_jws.encode(payload, key, algorithm="ES256",
                                      headers={"typ": CHECKPOINT_TYPE, "x5c": x5c})
        return Checkpoint(cp.trust_domain, tree_size, root_hash, head_hash, cp.time, document)


def _b64_der(value: Any) -> x509.Certificate:
    if not isinstance(value, str):
        raise CheckpointError("x5c must hold base64 DER certificates")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except ValueError:
        raise CheckpointError("x5c holds something that is not a certificate") from None


def verify_checkpoint(document: str, bundles: BundleSource) -> Checkpoint:
    """Verify a checkpoint JWS with the trust bundle alone (module docstring); returns what
    it signs. Anything wrong: :class:`~tabard.audit.errors.CheckpointError`."""
    try:
        header = jwt.get_unverified_header(document)
    except jwt.PyJWTError:
        raise CheckpointError("not a checkpoint: not a JWS") from None
    if header.get("typ") != CHECKPOINT_TYPE:
        raise CheckpointError(f"not a checkpoint: typ is {header.get('typ')!r}")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise CheckpointError("the checkpoint carries no x5c certificate chain")
    chain = [_b64_der(v) for v in x5c]
    leaf_key = chain[0].public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise CheckpointError("the audit key must be an EC or RSA key")
    try:
        payload = jwt.api_jws.decode(document, key=leaf_key, algorithms=_ALGORITHMS)
    except jwt.PyJWTError as exc:
        raise CheckpointError(f"the checkpoint signature does not verify ({exc})") from None
    try:
        body = json.loads(payload)
        cp = Checkpoint(str(body["trust_domain"]), int(body["tree_size"]),
                        bytes.fromhex(body["root_hash"]), bytes.fromhex(body["head_hash"]),
                        parse_time(body["time"]), document)
        if body.get("v") != 1 or cp.tree_size < 0:
            raise ValueError("version")
        trust_domain = TrustDomain.parse(cp.trust_domain)
    except (ValueError, KeyError, TypeError):
        raise CheckpointError("the checkpoint body is malformed") from None
    if canonical_json(cp.body()) != payload:
        raise CheckpointError("the checkpoint body is not in canonical form")
    try:
        spiffe_id = verify_x509_svid(chain, bundles, at=cp.time)
    except X509SvidError as exc:
        raise CheckpointError(f"the audit key's certificate does not chain to the bundle "
                              f"({exc.reason})") from None
    if spiffe_id != audit_spiffe_id(trust_domain):
        raise CheckpointError(f"the checkpoint is signed by {spiffe_id}, not by the audit "
                              f"identity of {trust_domain.name}")
    return cp
