"""Nodes: hosts that attested to the server and may hand out the SVIDs of their entries.

A node's SPIFFE ID is ``spiffe://<td>/node/<id>`` with ``id`` a random UUID (hex), given at
attestation. Every later call authenticates with the node SVID; a banned node is refused at
once, whatever its SVID's remaining lifetime (node-api.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from tabard.registry.selectors import Selector
from tabard.spiffe import SpiffeId, TrustDomain

__all__ = [
    "NODE_SEGMENT",
    "NodePrincipal",
    "NodeRecord",
    "node_id_from_spiffe_id",
    "node_spiffe_id",
]

NODE_SEGMENT = "node"
_NODE_ID = re.compile(r"[0-9a-f]{32}")


def node_spiffe_id(trust_domain: TrustDomain, node_id: str) -> SpiffeId:
    return SpiffeId.from_segments(trust_domain, NODE_SEGMENT, node_id)


def node_id_from_spiffe_id(spiffe_id: SpiffeId, trust_domain: TrustDomain) -> str | None:
    """The node id of ``spiffe://<td>/node/<id>``; ``None`` for any other ID."""
    segments = spiffe_id.segments
    if (spiffe_id.trust_domain != trust_domain or len(segments) != 2
            or segments[0] != NODE_SEGMENT or not _NODE_ID.fullmatch(segments[1])):
        return None
    return segments[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """An attested node. ``attestation_key`` is set by attestors whose evidence names the same
    host again (x509pop, cloud instance identity); join-token nodes have none."""

    id: str
    spiffe_id: SpiffeId
    attestor: str
    selectors: tuple[Selector, ...]
    attested_at: datetime
    svid_expires_at: datetime | None = None
    attestation_key: str | None = None
    banned_at: datetime | None = None

    @property
    def banned(self) -> bool:
        return self.banned_at is not None


@dataclass(frozen=True, slots=True)
class NodePrincipal:
    """The node behind a node API call, authenticated by its X509-SVID."""

    node_id: str
    spiffe_id: SpiffeId
