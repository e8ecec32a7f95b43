"""The OAuth 2 authorization server for delegation chains (``docs/design/oauth.md``).

Start with :class:`AuthorizationServer`; :mod:`.keys` holds its signing keys (and the dev
demo issuer's), :mod:`.ports` what it stores and looks up, :mod:`.errors` the RFC 6749
error codes, :mod:`.registry` the adapters over the registry and the directory.
"""

from tabard.oauth.errors import (
    InvalidClient,
    InvalidClientMetadata,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidSoftwareStatement,
    InvalidTarget,
    InvalidToken,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedTokenType,
)
from tabard.oauth.issuers import TrustedIssuer, remote_jwks_resolver
from tabard.oauth.keys import SigningKey, SigningKeys, public_jwk
from tabard.oauth.ports import (
    AgentFacts,
    AgentLookup,
    ClientStore,
    IssuedToken,
    OAuthClient,
    TokenStore,
    UserLookup,
)
from tabard.oauth.registry import DirectoryUsers, RegistryAgents
from tabard.oauth.server import (
    ASSERTION_JWT_BEARER,
    ASSERTION_JWT_SPIFFE,
    DEMO_ISSUER_PATH,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_JWT_BEARER,
    GRANT_TOKEN_EXCHANGE,
    ID_JAG_PROFILE,
    ID_JAG_TYP,
    TOKEN_TYPE_ACCESS,
    TOKEN_TYPE_ID,
    TOKEN_TYPE_JWT,
    AuthorizationServer,
    Client,
    DemoIssuerDisabled,
    DownstreamJwtSigner,
    agent_name_of,
)
from tabard.oauth.verified import VerifiedTokenCache

__all__ = [
    "ASSERTION_JWT_BEARER",
    "ASSERTION_JWT_SPIFFE",
    "DEMO_ISSUER_PATH",
    "GRANT_CLIENT_CREDENTIALS",
    "GRANT_JWT_BEARER",
    "GRANT_TOKEN_EXCHANGE",
    "ID_JAG_PROFILE",
    "ID_JAG_TYP",
    "TOKEN_TYPE_ACCESS",
    "TOKEN_TYPE_ID",
    "TOKEN_TYPE_JWT",
    "AgentFacts",
    "AgentLookup",
    "AuthorizationServer",
    "Client",
    "ClientStore",
    "DemoIssuerDisabled",
    "DirectoryUsers",
    "DownstreamJwtSigner",
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidSoftwareStatement",
    "InvalidTarget",
    "InvalidToken",
    "IssuedToken",
    "OAuthClient",
    "OAuthError",
    "RegistryAgents",
    "SigningKey",
    "SigningKeys",
    "TokenStore",
    "TrustedIssuer",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedTokenType",
    "UserLookup",
    "VerifiedTokenCache",
    "agent_name_of",
    "public_jwk",
    "remote_jwks_resolver",
]
