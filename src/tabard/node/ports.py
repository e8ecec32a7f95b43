"""What the node needs from the server (docs/design/node-api.md), as a small async port.

:class:`NodeServerClient` is implemented over HTTPS by :class:`tabard.node.serverclient.
HttpNodeServerClient` and in memory by the unit tests' fake. Only plain values cross it:
certificates are ``cryptography`` objects, IDs are :class:`SpiffeId`, never JSON or protobuf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cryptography import x509

from tabard.attestation.unix import ProcessEvidence
from tabard.authority.keymanager.base import PrivateKey
from tabard.spiffe import Bundle, SpiffeId, TrustDomain

__all__ = [
    "INSTANCE_PLACEHOLDER",
    "Entry",
    "InstanceGrant",
    "InstanceRequest",
    "IssuedJwtSvid",
    "IssuedX509Svid",
    "JwtSvidRequest",
    "NodeCredentials",
    "NodeServerClient",
    "SyncSnapshot",
    "X509SvidRequest",
]

INSTANCE_PLACEHOLDER = "{instance}"


@dataclass(frozen=True)
class Entry:
    """A registration entry of this node: selectors → SPIFFE ID (or instance template)."""

    id: str
    spiffe_id: str
    parent_id: str
    selectors: frozenset[str]
    x509_svid_ttl: int
    jwt_svid_ttl: int
    dns_names: tuple[str, ...] = ()
    federates_with: tuple[TrustDomain, ...] = ()
    hint: str = ""
    revision: int = 0
    created_at: str = ""

    @property
    def is_template(self) -> bool:
        """True when every process gets its own ID: the SPIFFE ID holds ``{instance}``."""
        return INSTANCE_PLACEHOLDER in self.spiffe_id

    def matches(self, selectors: frozenset[str] | set[str]) -> bool:
        """All of the entry's selectors are among the caller's (an empty entry matches none)."""
        return bool(self.selectors) and self.selectors <= selectors

    @property
    def svid_shape(self) -> tuple[str, tuple[str, ...], int]:
        """What an issued X509-SVID depends on; a change means the cached one is stale."""
        return (self.spiffe_id, self.dns_names, self.x509_svid_ttl)


@dataclass(frozen=True)
class NodeCredentials:
    """The node's own X509-SVID as issued by ``attest`` or ``renew``."""

    node_id: str
    spiffe_id: SpiffeId
    chain: tuple[x509.Certificate, ...]
    expires_at: datetime
    bundle: Bundle


@dataclass(frozen=True)
class SyncSnapshot:
    """The state of the world for this node: its entries, its bundle and federated bundles."""

    revision: int
    entries: tuple[Entry, ...]
    bundle: Bundle
    federated_bundles: Mapping[TrustDomain, Bundle] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceRequest:
    """Ask the server for the instance ID of one process under one template entry."""

    entry_id: str
    evidence: ProcessEvidence
    parent_instance_id: str | None


@dataclass(frozen=True)
class InstanceGrant:
    instance_id: str
    spiffe_id: SpiffeId
    created: bool


@dataclass(frozen=True)
class X509SvidRequest:
    entry_id: str
    instance_id: str | None
    csr_pem: str


@dataclass(frozen=True)
class IssuedX509Svid:
    entry_id: str
    instance_id: str | None
    spiffe_id: SpiffeId
    chain: tuple[x509.Certificate, ...]
    expires_at: datetime


@dataclass(frozen=True)
class JwtSvidRequest:
    entry_id: str
    instance_id: str | None
    audience: tuple[str, ...]
    ttl_seconds: int | None = None


@dataclass(frozen=True)
class IssuedJwtSvid:
    spiffe_id: SpiffeId
    token: str = field(repr=False)
    expires_at: datetime


class NodeServerClient(Protocol):
    """The node API routes, one method each. Failures raise :mod:`tabard.node.errors` types:
    ``ServerUnavailableError`` (retry later), ``ServerRefusedError`` (403, e.g.
    ``not_your_entry``), ``ServerRejectedError`` (other 4xx)."""

    async def attest(self, join_token: str, csr_pem: str) -> NodeCredentials:
        """``POST /node/v1/attest``: the only call made without a client certificate."""
        ...

    def use_credentials(
        self, chain: Sequence[x509.Certificate], key: PrivateKey, bundle: Bundle
    ) -> None:
        """Authenticate later calls with this node SVID and trust the node API by ``bundle``."""
        ...

    async def renew(self, csr_pem: str) -> NodeCredentials: ...

    async def sync(self) -> SyncSnapshot: ...

    async def register_instance(self, request: InstanceRequest) -> InstanceGrant: ...

    async def mint_x509_svids(
        self, requests: Sequence[X509SvidRequest]
    ) -> list[IssuedX509Svid]:
        """At most :data:`tabard.node.serverclient.MAX_X509_BATCH` requests per call."""
        ...

    async def mint_jwt_svid(self, request: JwtSvidRequest) -> IssuedJwtSvid: ...

    async def report_seen(self, instance_ids: Sequence[str]) -> int: ...

    async def aclose(self) -> None: ...
