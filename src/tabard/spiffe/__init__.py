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
from tabard.spiffe.jwtsvid import (
    ALLOWED_ALGORITHMS,
    JwtSvid,
    JwtSvidCache,
    JwtSvidValidator,
    verify_jwt_svid,
)
from tabard.spiffe.x509svid import X509Svid, X509SvidCache, verify_x509_svid

__all__ = [
    "ALLOWED_ALGORITHMS",
    "USE_JWT_SVID",
    "USE_X509_SVID",
    "Bundle",
    "BundleError",
    "BundleSet",
    "BundleSource",
    "JwtAuthority",
    "JwtSvid",
    "JwtSvidCache",
    "JwtSvidError",
    "JwtSvidValidator",
    "SpiffeId",
    "SpiffeIdError",
    "SvidError",
    "TrustDomain",
    "X509Svid",
    "X509SvidCache",
    "X509SvidError",
    "verify_jwt_svid",
    "verify_x509_svid",
]
