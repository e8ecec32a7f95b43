"""OAuth errors, each carrying its RFC 6749 §5.2 (or extension) error code as ``code``.

The server answers them as ``{"error": code, "error_description": message}`` with
``Cache-Control: no-store``; ``status`` is the HTTP status the RFCs give (400, or 401 for a
failed client authentication).

    OAuthError
    ├── InvalidRequest        invalid_request (RFC 6749; RFC 8693 §2.2.2 for bad tokens)
    ├── InvalidClient         invalid_client, 401
    ├── InvalidGrant          invalid_grant
    ├── UnauthorizedClient    unauthorized_client
    ├── UnsupportedGrantType  unsupported_grant_type
    ├── InvalidScope          invalid_scope
    ├── InvalidTarget         invalid_target (RFC 8707)
    ├── UnsupportedTokenType  unsupported_token_type (RFC 7009)
    ├── InvalidToken          invalid_token, 401 (RFC 6750: a bad initial access token)
    ├── InvalidClientMetadata invalid_client_metadata (RFC 7591)
    └── InvalidSoftwareStatement invalid_software_statement (RFC 7591)
"""

from __future__ import annotations

from tabard.errors import Invalid, Unauthenticated

__all__ = [
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidSoftwareStatement",
    "InvalidTarget",
    "InvalidToken",
    "OAuthError",
    "TemporarilyUnavailable",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedTokenType",
]


class OAuthError(Invalid):
    """An OAuth error response; ``code`` is the wire ``error`` value."""

    code = "invalid_request"
    status = 400


class InvalidRequest(OAuthError):
    code = "invalid_request"


class InvalidClient(OAuthError, Unauthenticated):
    code = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    code = "invalid_grant"


class UnauthorizedClient(OAuthError):
    code = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"


class InvalidScope(OAuthError):
    code = "invalid_scope"


class InvalidTarget(OAuthError):
    code = "invalid_target"


class UnsupportedTokenType(OAuthError):
    code = "unsupported_token_type"


class InvalidToken(OAuthError, Unauthenticated):
    code = "invalid_token"
    status = 401


class InvalidClientMetadata(OAuthError):
    code = "invalid_client_metadata"


class InvalidSoftwareStatement(OAuthError):
    code = "invalid_software_statement"


class TemporarilyUnavailable(OAuthError):
    """The grant cannot be recorded in the audit log, so it is not made (fail closed)."""

    code = "temporarily_unavailable"
    status = 503
