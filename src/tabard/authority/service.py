"""The authority of one trust domain: what the server calls to mint SVIDs and serve bundles.

It owns an X.509 CA key and a JWT-SVID key at a time, each moving through
``prepared → active → old → retired`` (see :mod:`tabard.authority.ports`), persisted through
an :class:`~tabard.authority.ports.AuthorityStore` with the private keys in a
:class:`~tabard.authority.keymanager.KeyManager`.

Rotation schedule (run by :meth:`Authority.tick`; ``L`` is the active key's lifetime,
``created_at`` to ``not_after``, 24 h by default for both kinds):

* at ``L/2`` a new key is **prepared**: published in the bundle, not signing;
* at ``2L/3`` it is **activated**, provided it has been published for at least the publish
  lead (3 times ``refresh_hint`` by default, the lead time STANDARDS.md §4.5 recommends); the
  previous key becomes **old**. So keys rotate every ``L/2`` and each new key is published
  ``L/6`` (4 h) before it signs. If the active key is about to end (less than one SVID TTL
  left) activation does not wait for the lead;
* an old (or never activated) key is **retired** once its ``not_after`` passes: no SVID it
  signed can still be valid, because SVID lifetimes are capped at the signing key's.

Every change to the published keys bumps the bundle sequence *before* it is stored, so a
crash can only produce an unnecessary bump, never new content under an old sequence.

Manual :meth:`Authority.rotate` activates the prepared key at once, or prepares and activates
a new one: an emergency measure, since peers only trust the new key after they next fetch
the bundle. Minting reads an immutable snapshot of the active keys without locking.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.authority.ca import (
    CertificateAuthority,
    UpstreamCA,
    X509SvidParams,
    certificates_to_pem,
    intermediate_signed_by_upstream,
    self_signed_root,
)
from tabard.authority.errors import (
    AuthorityNotFoundError,
    AuthorityNotReadyError,
    AuthorityStateError,
    CaCertificateError,
    KeyNotFoundError,
    SvidRequestError,
)
from tabard.authority.jwt import (
    JWT_ALGORITHMS,
    JwtSigner,
    algorithm_for_key_type,
    algorithm_supports,
)
from tabard.authority.keymanager.base import KeyManager, KeyType, PrivateKey, PublicKey
from tabard.authority.ports import (
    KINDS,
    AuthorityKeyRecord,
    AuthorityKind,
    AuthorityStore,
)
from tabard.clock import Clock
from tabard.errors import Invalid
from tabard.spiffe import Bundle, JwtAuthority, SpiffeId, TrustDomain

__all__ = ["Authority", "MintedX509Svid"]

_ZERO = timedelta(0)
_S = TypeVar("_S")


@dataclass(frozen=True, slots=True)
class MintedX509Svid:
    """A minted X509-SVID: leaf first, then intermediates (never the root).

    ``private_key`` is set only when tabard generated the key pair (no public key was
    given); the caller hands it to the workload and must not keep or log it.
    """

    spiffe_id: SpiffeId
    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKey | None = None

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def expires_at(self) -> datetime:
        return self.chain[0].not_valid_after_utc


@dataclass(frozen=True, slots=True)
class _X509Material:
    """A parsed x509 record: its CA certificate, the chain above it, and its anchor."""

    certificate: x509.Certificate
    upstream_chain: tuple[x509.Certificate, ...]

    @property
    def anchor(self) -> x509.Certificate:
        return self.upstream_chain[-1] if self.upstream_chain else self.certificate


@dataclass(frozen=True, slots=True)
class _X509Slot:
    record: AuthorityKeyRecord
    ca: CertificateAuthority


@dataclass(frozen=True, slots=True)
class _JwtSlot:
    record: AuthorityKeyRecord
    signer: JwtSigner


def _default_jwt_key_type(algorithm: str, ca_key_type: KeyType) -> KeyType:
    """ES* fix the curve; RS*/PS* reuse an RSA CA key type, else RSA 2048."""
    if algorithm == "ES256":
        return KeyType.EC_P256
    if algorithm == "ES384":
        return KeyType.EC_P384
    return ca_key_type if ca_key_type in (KeyType.RSA_2048, KeyType.RSA_4096) else KeyType.RSA_2048


def _positive(name: str, value: timedelta) -> timedelta:
    if not isinstance(value, timedelta) or value <= _ZERO:
        raise Invalid(f"{name} must be a positive duration")
    return value


class Authority:
    """CA + JWT-SVID signing keys of ``trust_domain`` with scheduled rotation.

    Call :meth:`ensure_initialized` once at start-up, then :meth:`tick` periodically (at
    least once per ``refresh_hint``); mint with :meth:`mint_x509_svid` and
    :meth:`mint_jwt_svid`, serve :meth:`bundle`. With ``upstream`` the CA key is an
    intermediate signed by that CA and the bundle carries the upstream root.
    """

    def __init__(
        self,
        trust_domain: TrustDomain,
        key_manager: KeyManager,
        store: AuthorityStore,
        clock: Clock,
        *,
        ca_ttl: timedelta = timedelta(hours=24),
        jwt_key_ttl: timedelta = timedelta(hours=24),
        x509_svid_ttl: timedelta = timedelta(hours=1),
        max_x509_svid_ttl: timedelta = timedelta(hours=4),
        jwt_svid_ttl: timedelta = timedelta(minutes=5),
        max_jwt_svid_ttl: timedelta = timedelta(hours=1),
        key_type: KeyType = KeyType.EC_P256,
        jwt_algorithm: str = "ES256",
        jwt_key_type: KeyType | None = None,
        upstream: UpstreamCA | None = None,
        refresh_hint: int = 300,
        publish_lead: timedelta | None = None,
    ) -> None:
        if not isinstance(trust_domain, TrustDomain):
            raise Invalid("trust_domain must be a TrustDomain")
        self._td = trust_domain
        self._km = key_manager
        self._store = store
        self._clock = clock
        self._ca_ttl = _positive("ca_ttl", ca_ttl)
        self._jwt_key_ttl = _positive("jwt_key_ttl", jwt_key_ttl)
        self._x509_svid_ttl = _positive("x509_svid_ttl", x509_svid_ttl)
        self._max_x509_svid_ttl = _positive("max_x509_svid_ttl", max_x509_svid_ttl)
        self._jwt_svid_ttl = _positive("jwt_svid_ttl", jwt_svid_ttl)
        self._max_jwt_svid_ttl = _positive("max_jwt_svid_ttl", max_jwt_svid_ttl)
        if x509_svid_ttl > max_x509_svid_ttl or jwt_svid_ttl > max_jwt_svid_ttl:
            raise Invalid("a default SVID TTL cannot exceed its maximum")
        self._key_type = KeyType(key_type)
        if jwt_algorithm not in JWT_ALGORITHMS:
            raise Invalid(f"jwt_algorithm must be one of {', '.join(JWT_ALGORITHMS)}")
        self._jwt_algorithm = jwt_algorithm
        if jwt_key_type is None:
            jwt_key_type = _default_jwt_key_type(jwt_algorithm, self._key_type)
        if not algorithm_supports(jwt_algorithm, jwt_key_type):
            raise Invalid(f"jwt_algorithm {jwt_algorithm} cannot sign with a {jwt_key_type} key")
        self._jwt_key_type = KeyType(jwt_key_type)
        self._upstream = upstream
        if not isinstance(refresh_hint, int) or refresh_hint <= 0:
            raise Invalid("refresh_hint must be a positive number of seconds")
        self._refresh_hint = refresh_hint
        self._publish_lead = (
            _positive("publish_lead", publish_lead)
            if publish_lead is not None
            else timedelta(seconds=3 * refresh_hint)
        )
        self._lock = threading.RLock()
        self._records: dict[str, AuthorityKeyRecord] = {}
        self._sequence = -1
        self._materials: dict[str, _X509Material] = {}
        self._x509_slot: _X509Slot | None = None
        self._jwt_slot: _JwtSlot | None = None
        self._slot_errors: dict[AuthorityKind, str] = {}
        self._bundle: Bundle | None = None

    # --- reading ------------------------------------------------------------------------

    @property
    def trust_domain(self) -> TrustDomain:
        return self._td

    def bundle(self) -> Bundle:
        """Published X.509 anchors and JWT keys, with the current sequence (cached)."""
        bundle = self._bundle
        if bundle is None:
            with self._lock:
                bundle = self._bundle
                if bundle is None:
                    bundle = self._build_bundle()
                    self._bundle = bundle
        return bundle

    def authorities(self) -> list[AuthorityKeyRecord]:
        """Every signing-key record, retired ones included, oldest first."""
        with self._lock:
            return sorted(self._records.values(), key=lambda r: (r.created_at, r.id))

    def active_authority(self, kind: AuthorityKind) -> AuthorityKeyRecord | None:
        with self._lock:
            return self._active(kind)

    # --- minting (lock-free: reads one immutable slot) -----------------------------------

    def mint_x509_svid(
        self,
        spiffe_id: SpiffeId,
        public_key: PublicKey | None = None,
        ttl: timedelta | None = None,
        dns_names: Sequence[str] = (),
    ) -> MintedX509Svid:
        """An X509-SVID for ``spiffe_id``; generates an EC P-256 key pair if none is given.

        ``ttl`` defaults to ``x509_svid_ttl`` and is capped at ``max_x509_svid_ttl`` and at
        the CA's end of life.
        """
        slot = self._x509_slot
        if slot is None:
            raise self._not_ready("x509")
        lifetime = self._x509_svid_ttl if ttl is None else min(ttl, self._max_x509_svid_ttl)
        private_key: PrivateKey | None = None
        if public_key is None:
            private_key = ec.generate_private_key(ec.SECP256R1())
            public_key = private_key.public_key()
        chain = slot.ca.mint_x509_svid(
            X509SvidParams(spiffe_id, public_key, lifetime, tuple(dns_names))
        )
        return MintedX509Svid(spiffe_id, chain, private_key)

    def mint_jwt_svid(
        self,
        spiffe_id: SpiffeId,
        audience: str | Sequence[str],
        ttl: timedelta | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A JWT-SVID for ``spiffe_id``; ``ttl`` defaults to ``jwt_svid_ttl``, capped at the max."""
        slot = self._jwt_slot
        if slot is None:
            raise self._not_ready("jwt")
        if not isinstance(spiffe_id, SpiffeId) or spiffe_id.trust_domain != self._td:
            raise SvidRequestError(f"{spiffe_id} is not in trust domain {self._td}")
        lifetime = self._jwt_svid_ttl if ttl is None else min(ttl, self._max_jwt_svid_ttl)
        return slot.signer.mint(spiffe_id, audience, lifetime, extra_claims)

    # --- lifecycle ----------------------------------------------------------------------

    def ensure_initialized(self) -> list[AuthorityKeyRecord]:
        """Load the keys from the store, creating the first CA and JWT key if there are none.

        Idempotent. When the configured CA mode no longer matches the stored keys (upstream
        added, removed, or its root changed) it replaces the active CA at once, keeping the
        old one published, and retires prepared CA keys of the former mode. Raises
        :class:`AuthorityNotReadyError` when the key manager lacks an active key.
        Returns the records it created or changed.
        """
        with self._lock:
            self._reload()
            now = self._clock.now()
            touched: list[str] = []
            for record in self._of_kind("x509"):
                if record.state == "prepared" and not self._matches_ca_mode(record):
                    self._retire(record, now)  # never signed anything: safe to drop
                    touched.append(record.id)
            self._reload()
            active = self._active("x509")
            if active is not None and not self._matches_ca_mode(active):
                record = self._prepare("x509", now)
                self._activate(record, now)
                self._reload()
                touched += [record.id, active.id]
            for kind in KINDS:
                touched += self._schedule(kind, now)
            self._raise_if_not_ready()
            return self._touched(touched)

    def tick(self) -> list[AuthorityKeyRecord]:
        """Apply the rotation schedule (see the module docstring); returns changed records.

        Also picks up changes made by other server replicas. A lost race with another
        replica is not an error: the next tick sees its result.
        """
        with self._lock:
            self._reload()
            now = self._clock.now()
            touched: list[str] = []
            for kind in KINDS:
                try:
                    touched += self._schedule(kind, now)
                except AuthorityStateError:
                    self._reload()
            self._raise_if_not_ready()
            return self._touched(touched)

    def rotate(self, kind: AuthorityKind | None = None) -> list[AuthorityKeyRecord]:
        """Activate the prepared key of ``kind`` (both kinds when None) now, preparing one
        first if there is none; the previous active key becomes old. Returns the new
        active records."""
        kinds = KINDS if kind is None else (kind,)
        if any(k not in KINDS for k in kinds):
            raise Invalid(f"authority kind must be one of {', '.join(KINDS)}")
        with self._lock:
            self._reload()
            now = self._clock.now()
            activated: list[str] = []
            for k in kinds:
                record = self._prepared(k, now) or self._prepare(k, now)
                self._activate(record, now)
                self._reload()
                activated.append(record.id)
            return self._touched(activated)

    def retire(self, record_id: str) -> AuthorityKeyRecord:
        """Remove an old or prepared key from the bundle and delete its private key.

        The active key cannot be retired (:class:`AuthorityStateError`): rotate first.
        Retiring an already retired key is a no-op.
        """
        with self._lock:
            self._reload()
            record = self._records.get(record_id)
            if record is None:
                raise AuthorityNotFoundError(f"no authority {record_id!r}")
            if record.state == "active":
                raise AuthorityStateError(
                    f"authority {record_id} is active and cannot be retired; rotate first"
                )
            if record.state != "retired":
                self._retire(record, self._clock.now())
                self._reload()
            return self._records[record_id]

    # --- schedule -----------------------------------------------------------------------

    def _schedule(self, kind: AuthorityKind, now: datetime) -> list[str]:
        touched: list[str] = []
        active = self._active(kind)
        prepared = self._prepared(kind, now)
        if active is None:
            record = prepared or self._prepare(kind, now)
            self._activate(record, now)
            self._reload()
            touched.append(record.id)
        else:
            life = active.not_after - active.created_at
            if prepared is None and now >= active.created_at + life / 2:
                prepared = self._prepare(kind, now)
                self._reload()
                touched.append(prepared.id)
            if prepared is not None and now >= active.created_at + life * 2 / 3:
                published_for = now - prepared.created_at
                remaining = active.not_after - now
                svid_ttl = self._x509_svid_ttl if kind == "x509" else self._jwt_svid_ttl
                if published_for >= self._publish_lead or remaining < svid_ttl:
                    self._activate(prepared, now)
                    self._reload()
                    touched += [prepared.id, active.id]
        expired = [
            r for r in self._of_kind(kind)
            if r.state in ("old", "prepared") and r.not_after <= now
        ]
        for record in expired:
            self._retire(record, now)
            touched.append(record.id)
        if expired:
            self._reload()
        return touched

    def _prepare(self, kind: AuthorityKind, now: datetime) -> AuthorityKeyRecord:
        record_id = str(uuid.uuid4())
        key_id = f"{kind}-{record_id}"
        key_type = self._key_type if kind == "x509" else self._jwt_key_type
        public_key = self._km.generate(key_id, key_type)
        try:
            certificate_pem: bytes | None = None
            chain_pem: bytes | None = None
            if kind == "x509":
                if self._upstream is not None:
                    certificate = intermediate_signed_by_upstream(
                        self._upstream.certificate,
                        self._upstream.private_key,
                        self._td,
                        public_key,
                        self._ca_ttl,
                        self._clock,
                    )
                    chain_pem = certificates_to_pem(self._upstream.path_to_anchor)
                else:
                    certificate = self_signed_root(
                        self._td, self._km.private_key(key_id), self._ca_ttl, self._clock
                    )
                certificate_pem = certificates_to_pem([certificate])
                not_after = certificate.not_valid_after_utc
            else:
                not_after = now + self._jwt_key_ttl
            record = AuthorityKeyRecord(
                id=record_id,
                kind=kind,
                state="prepared",
                key_id=key_id,
                key_type=key_type,
                public_key_pem=public_key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                created_at=now,
                not_after=not_after,
                certificate_pem=certificate_pem,
                upstream_chain_pem=chain_pem,
            )
            self._bump_if_published_changes([*self._records.values(), record])
            self._store.add_key(record)
        except BaseException:
            self._km.delete(key_id)
            raise
        return record

    def _activate(self, record: AuthorityKeyRecord, now: datetime) -> None:
        """prepared → active, then every other active key of its kind → old.

        The published set does not change, so the sequence does not either.
        """
        if record.state != "active":
            self._store.set_state(record.id, "active", now, expected="prepared")
        for other in self._of_kind(record.kind):
            if other.state == "active" and other.id != record.id:
                self._store.set_state(other.id, "old", now, expected="active")

    def _retire(self, record: AuthorityKeyRecord, now: datetime) -> None:
        retired = record.with_state("retired", now)
        self._bump_if_published_changes(
            [retired if r.id == record.id else r for r in self._records.values()]
        )
        self._store.set_state(record.id, "retired", now, expected=record.state)
        self._km.delete(record.key_id)

    def _bump_if_published_changes(self, future: Iterable[AuthorityKeyRecord]) -> None:
        if self._published(future) != self._published(self._records.values()):
            self._store.bump_bundle_sequence()

    def _published(
        self, records: Iterable[AuthorityKeyRecord]
    ) -> tuple[frozenset[bytes], frozenset[tuple[str, bytes]]]:
        anchors: set[bytes] = set()
        jwt_keys: set[tuple[str, bytes]] = set()
        for record in records:
            if not record.published:
                continue
            if record.kind == "x509":
                anchor = self._material(record).anchor
                anchors.add(anchor.public_bytes(serialization.Encoding.DER))
            else:
                jwt_keys.add((record.key_id, record.public_key_pem))
        return frozenset(anchors), frozenset(jwt_keys)

    def _matches_ca_mode(self, record: AuthorityKeyRecord) -> bool:
        material = self._material(record)
        if self._upstream is None:
            return not material.upstream_chain
        return material.anchor in self._upstream.roots

    # --- state cache ----------------------------------------------------------------------

    def _reload(self) -> None:
        """Re-read the store; rebuild the signing slots and drop the bundle when it changed."""
        records = {r.id: r for r in self._store.list_keys()}
        sequence = self._store.bundle_sequence()
        if records == self._records and sequence == self._sequence:
            return
        self._records = records
        self._sequence = sequence
        self._bundle = None
        self._materials = {k: v for k, v in self._materials.items() if k in records}
        self._refresh_slots()

    def _refresh_slots(self) -> None:
        x509_active = self._active("x509")
        if x509_active is None:
            self._x509_slot = None
        elif self._x509_slot is None or self._x509_slot.record != x509_active:
            self._x509_slot = self._slot_or_none("x509", x509_active, self._build_x509_slot)
        jwt_active = self._active("jwt")
        if jwt_active is None:
            self._jwt_slot = None
        elif self._jwt_slot is None or self._jwt_slot.record != jwt_active:
            self._jwt_slot = self._slot_or_none("jwt", jwt_active, self._build_jwt_slot)

    def _slot_or_none(
        self,
        kind: AuthorityKind,
        record: AuthorityKeyRecord,
        build: Callable[[AuthorityKeyRecord], _S],
    ) -> _S | None:
        try:
            slot = build(record)
        except KeyNotFoundError:
            self._slot_errors[kind] = (
                f"the key manager has no private key for the active {kind} authority "
                f"{record.id}; point the server at its key directory and key-encryption key, "
                "or rotate to replace the key"
            )
            return None
        self._slot_errors.pop(kind, None)
        return slot

    def _build_x509_slot(self, record: AuthorityKeyRecord) -> _X509Slot:
        material = self._material(record)
        ca = CertificateAuthority(
            material.certificate,
            self._km.private_key(record.key_id),
            material.upstream_chain[:-1],
            clock=self._clock,
            trust_domain=self._td,
        )
        return _X509Slot(record, ca)

    def _build_jwt_slot(self, record: AuthorityKeyRecord) -> _JwtSlot:
        algorithm = (
            self._jwt_algorithm
            if algorithm_supports(self._jwt_algorithm, record.key_type)
            else algorithm_for_key_type(record.key_type)
        )
        signer = JwtSigner(
            record.key_id,
            self._km.private_key(record.key_id),
            algorithm,
            clock=self._clock,
            not_after=record.not_after,
        )
        return _JwtSlot(record, signer)

    def _material(self, record: AuthorityKeyRecord) -> _X509Material:
        material = self._materials.get(record.id)
        if material is None:
            try:
                certificate = x509.load_pem_x509_certificate(record.certificate_pem or b"")
                chain = (
                    tuple(x509.load_pem_x509_certificates(record.upstream_chain_pem))
                    if record.upstream_chain_pem
                    else ()
                )
            except ValueError as exc:
                raise CaCertificateError(
                    f"authority {record.id} holds an unreadable certificate"
                ) from exc
            material = _X509Material(certificate, chain)
            self._materials[record.id] = material
        return material

    def _build_bundle(self) -> Bundle:
        anchors: dict[bytes, x509.Certificate] = {}
        jwt_authorities: list[JwtAuthority] = []
        for record in sorted(self._records.values(), key=lambda r: (r.created_at, r.id)):
            if not record.published:
                continue
            if record.kind == "x509":
                anchor = self._material(record).anchor
                anchors.setdefault(anchor.public_bytes(serialization.Encoding.DER), anchor)
            else:
                public_key = serialization.load_pem_public_key(record.public_key_pem)
                if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
                    raise CaCertificateError(f"authority {record.id} has an unsupported key")
                jwt_authorities.append(JwtAuthority(record.key_id, public_key))
        return Bundle(
            self._td,
            tuple(anchors.values()),
            tuple(jwt_authorities),
            sequence=max(self._sequence, 0),
            refresh_hint=self._refresh_hint,
        )

    def _of_kind(self, kind: AuthorityKind) -> list[AuthorityKeyRecord]:
        return sorted(
            (r for r in self._records.values() if r.kind == kind),
            key=lambda r: (r.created_at, r.id),
        )

    def _active(self, kind: AuthorityKind) -> AuthorityKeyRecord | None:
        actives = [r for r in self._of_kind(kind) if r.state == "active"]
        if not actives:
            return None
        return max(actives, key=lambda r: (r.activated_at or r.created_at, r.created_at))

    def _prepared(
        self, kind: AuthorityKind, now: datetime | None = None
    ) -> AuthorityKeyRecord | None:
        """The prepared key published longest (normally the only one), unexpired at ``now``."""
        return next(
            (
                r for r in self._of_kind(kind)
                if r.state == "prepared" and (now is None or r.not_after > now)
            ),
            None,
        )

    def _touched(self, record_ids: Iterable[str]) -> list[AuthorityKeyRecord]:
        return [self._records[i] for i in dict.fromkeys(record_ids) if i in self._records]

    def _not_ready(self, kind: AuthorityKind) -> AuthorityNotReadyError:
        message = self._slot_errors.get(kind)
        if message is None:
            message = f"no active {kind} authority; call ensure_initialized() first"
        return AuthorityNotReadyError(message)

    def _raise_if_not_ready(self) -> None:
        if self._x509_slot is None:
            raise self._not_ready("x509")
        if self._jwt_slot is None:
            raise self._not_ready("jwt")
