"""SPIFFE nouns as pure values: IDs, trust domains, bundles, and X509-/JWT-SVID validation.

No I/O and no database: everything here takes its inputs (bundles, time) as arguments, so it
is reused unchanged by the server, the node, the gateway and the SDK.
"""

from tabard.spiffe.bundle import (
    USE_JWT_SVID,
    USE_X509_SVID,
    Bundle,
    BundleSet,
    BundleSource,
    JwtAuthority,
)
from tabard.spiffe.errors import BundleError, JwtSvidError, SpiffeIdError, SvidError, X509SvidError
from tabard.spiffe.id import SpiffeId, TrustDomain

__all__ = [
    "USE_JWT_SVID",
    "USE_X509_SVID",
    "Bundle",
    "BundleError",
    "BundleSet",
    "BundleSource",
    "JwtAuthority",
    "JwtSvidError",
    "SpiffeId",
    "SpiffeIdError",
    "SvidError",
    "TrustDomain",
    "X509SvidError",
]
