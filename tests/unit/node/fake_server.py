"""An in-memory node API (docs/design/node-api.md) for the node's unit tests.

It signs with a real CA and JWT key (``tabard.authority``), keeps entries and instances in
dicts, can be switched "down" (every call raises ``ServerUnavailableError``) and counts calls.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.authority import CertificateAuthority, JwtSigner, X509SvidParams, self_signed_root
from tabard.authority.keymanager.base import PrivateKey
from tabard.clock import Clock, SystemClock
from tabard.node.errors import ServerRefusedError, ServerRejectedError, ServerUnavailableError
from tabard.node.ports import (
    INSTANCE_PLACEHOLDER,
    Entry,
    InstanceGrant,
    InstanceRequest,
    IssuedJwtSvid,
    IssuedX509Svid,
    JwtSvidRequest,
    NodeCredentials,
    SyncSnapshot,
    X509SvidRequest,
)
from tabard.spiffe import Bundle, JwtAuthority, SpiffeId, TrustDomain

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_instance_id() -> str:
    return "".join(secrets.choice(_CROCKFORD) for _ in range(26))


@dataclass(frozen=True)
class RecordedInstance:
    instance_id: str
    spiffe_id: SpiffeId
    entry_id: str
    pid: int
    start_time: float
    exe_sha256: str
    selectors: tuple[str, ...]
    parent_instance_id: str | None


class FakeNodeServer:
    """:class:`tabard.node.ports.NodeServerClient` in memory."""

    def __init__(self, trust_domain: str = "example.org", clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.trust_domain = TrustDomain(trust_domain)
        self._lock = threading.Lock()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        root = self_signed_root(self.trust_domain, ca_key, timedelta(days=1), self.clock)
        self.ca = CertificateAuthority(root, ca_key, clock=self.clock)
        jwt_key = ec.generate_private_key(ec.SECP256R1())
        self.signer = JwtSigner("jwt-1", jwt_key, "ES256", clock=self.clock)
        self.bundle = Bundle(
            self.trust_domain, (root,), (JwtAuthority("jwt-1", jwt_key.public_key()),), 1
        )
        self.federated: dict[TrustDomain, Bundle] = {}
        self.entries: dict[str, Entry] = {}
        self.revision = 1
        self.join_tokens: set[str] = set()
        self.node_id = "n-" + secrets.token_hex(4)
        self.node_spiffe_id = SpiffeId.from_segments(self.trust_domain, "node", self.node_id)
        self.node_svid_ttl = 3600
        self.instances: dict[tuple[str, int, float], RecordedInstance] = {}
        self.seen: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.available = True
        self.clients: list[tuple[SpiffeId, Bundle]] = []

    # --- test controls ---------------------------------------------------------------------

    def new_join_token(self) -> str:
        token = secrets.token_urlsafe(16)
        self.join_tokens.add(token)
        return token

    def add_entry(
        self,
        spiffe_id: str,
        selectors: Sequence[str],
        *,
        x509_ttl: int = 3600,
        jwt_ttl: int = 300,
        hint: str = "",
        federates_with: Sequence[str] = (),
    ) -> Entry:
        with self._lock:
            self.revision += 1
            entry = Entry(
                id=secrets.token_hex(8),
                spiffe_id=spiffe_id,
                parent_id=str(self.node_spiffe_id),
                selectors=frozenset(selectors),
                x509_svid_ttl=x509_ttl,
                jwt_svid_ttl=jwt_ttl,
                hint=hint,
                federates_with=tuple(TrustDomain.parse(td) for td in federates_with),
                revision=self.revision,
                created_at=f"{self.revision:08d}",
            )
            self.entries[entry.id] = entry
            return entry

    def update_entry(self, entry_id: str, **changes: object) -> Entry:
        with self._lock:
            self.revision += 1
            entry = replace(self.entries[entry_id], revision=self.revision, **changes)  # type: ignore[arg-type]
            self.entries[entry_id] = entry
            return entry

    def remove_entry(self, entry_id: str) -> None:
        with self._lock:
            self.revision += 1
            del self.entries[entry_id]

    def instance_by_id(self, instance_id: str) -> RecordedInstance:
        return next(i for i in self.instances.values() if i.instance_id == instance_id)

    # --- the port --------------------------------------------------------------------------

    def _call(self, name: str) -> None:
        if not self.available:
            raise ServerUnavailableError("fake server is down")
        self.calls[name] += 1

    def _node_credentials(self, csr_pem: str) -> NodeCredentials:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        if not csr.is_signature_valid:
            raise ServerRejectedError("bad CSR")
        chain = self.ca.mint_x509_svid(
            X509SvidParams(
                self.node_spiffe_id,
                csr.public_key(),  # type: ignore[arg-type]
                timedelta(seconds=self.node_svid_ttl),
            )
        )
        return NodeCredentials(
            node_id=self.node_id,
            spiffe_id=self.node_spiffe_id,
            chain=chain,
            expires_at=chain[0].not_valid_after_utc,
            bundle=self.bundle,
        )

    async def attest(self, join_token: str, csr_pem: str) -> NodeCredentials:
        self._call("attest")
        if join_token not in self.join_tokens:
            raise ServerRefusedError("join token unknown or used", code="invalid_join_token")
        self.join_tokens.discard(join_token)
        return self._node_credentials(csr_pem)

    def use_credentials(
        self, chain: Sequence[x509.Certificate], key: PrivateKey, bundle: Bundle
    ) -> None:
        self.clients.append((SpiffeId.parse(_uri(chain[0])), bundle))

    async def renew(self, csr_pem: str) -> NodeCredentials:
        self._call("renew")
        return self._node_credentials(csr_pem)

    async def sync(self) -> SyncSnapshot:
        self._call("sync")
        with self._lock:
            return SyncSnapshot(
                self.revision, tuple(self.entries.values()), self.bundle, dict(self.federated)
            )

    async def register_instance(self, request: InstanceRequest) -> InstanceGrant:
        self._call("register_instance")
        entry = self.entries.get(request.entry_id)
        if entry is None or not entry.is_template:
            raise ServerRefusedError("not a template entry of this node", code="not_your_entry")
        ev = request.evidence
        key = (entry.id, ev.pid, ev.start_time)
        with self._lock:
            found = self.instances.get(key)
            if found is not None:
                return InstanceGrant(found.instance_id, found.spiffe_id, False)
            instance_id = new_instance_id()
            spiffe_id = SpiffeId.parse(entry.spiffe_id.replace(INSTANCE_PLACEHOLDER, instance_id))
            self.instances[key] = RecordedInstance(
                instance_id, spiffe_id, entry.id, ev.pid, ev.start_time, ev.exe_sha256,
                ev.selectors(), request.parent_instance_id,
            )
        return InstanceGrant(instance_id, spiffe_id, True)

    def _resolve(self, entry_id: str, instance_id: str | None) -> tuple[Entry, SpiffeId]:
        entry = self.entries.get(entry_id)
        if entry is None:
            raise ServerRefusedError("unknown entry", code="not_your_entry")
        if entry.is_template:
            found = [
                i for i in self.instances.values()
                if i.instance_id == instance_id and i.entry_id == entry_id
            ]
            if not found:
                raise ServerRefusedError("template entry without instance", code="not_your_entry")
            return entry, found[0].spiffe_id
        return entry, SpiffeId.parse(entry.spiffe_id)

    async def mint_x509_svids(self, requests: Sequence[X509SvidRequest]) -> list[IssuedX509Svid]:
        self._call("mint_x509_svids")
        self.calls["x509_svids"] += len(requests)
        out = []
        for request in requests:
            entry, spiffe_id = self._resolve(request.entry_id, request.instance_id)
            csr = x509.load_pem_x509_csr(request.csr_pem.encode())
            chain = self.ca.mint_x509_svid(
                X509SvidParams(
                    spiffe_id,
                    csr.public_key(),  # type: ignore[arg-type]
                    timedelta(seconds=entry.x509_svid_ttl),
                    entry.dns_names,
                )
            )
            out.append(
                IssuedX509Svid(
                    entry.id, request.instance_id, spiffe_id, chain,
                    chain[0].not_valid_after_utc,
                )
            )
        return out

    async def mint_jwt_svid(self, request: JwtSvidRequest) -> IssuedJwtSvid:
        self._call("mint_jwt_svid")
        entry, spiffe_id = self._resolve(request.entry_id, request.instance_id)
        ttl = timedelta(seconds=request.ttl_seconds or entry.jwt_svid_ttl)
        token = self.signer.mint(spiffe_id, list(request.audience), ttl)
        return IssuedJwtSvid(spiffe_id, token, self.clock.now() + ttl)

    async def report_seen(self, instance_ids: Sequence[str]) -> int:
        self._call("report_seen")
        self.seen.update(instance_ids)
        return len(instance_ids)

    async def aclose(self) -> None:
        self.calls["aclose"] += 1


def _uri(cert: x509.Certificate) -> str:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sans.get_values_for_type(x509.UniformResourceIdentifier)[0]
