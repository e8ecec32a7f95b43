"""What the authorization server keeps and looks up, as small ports (``tabard.store`` fills
the storage ones in SQL; :mod:`tabard.oauth.registry` adapts the registry and directory).

Only domain values cross these ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "AgentFacts",
    "AgentLookup",
    "ClientStore",
    "IssuedToken",
    "OAuthClient",
    "TokenStore",
    "UserLookup",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken:
    """The record of one access token tabard issued: what introspection and revocation need.

    ``act`` is the token's ``act`` claim (the whole delegation chain, current actor
    outermost); ``parent_jti`` the ``jti`` of the tabard token it was exchanged from, so
    revoking a token reaches every token below it.
    """

    jti: str
    subject: str
    client_id: str
    audience: tuple[str, ...]
    scope: str | None
    act: Mapping[str, Any] | None
    checksum: str | None
    parent_jti: str | None
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


class TokenStore(Protocol):
    """Issued-token records; thread-safe."""

    def add(self, record: IssuedToken) -> None: ...

    def get(self, jti: str) -> IssuedToken | None: ...

    def revoke_tree(self, jti: str, at: datetime) -> int:
        """Revoke ``jti`` and every token exchanged from it, transitively; returns how many
        records were newly revoked (0 for an unknown or already revoked tree)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthClient:
    """A registered client (RFC 7591). ``auth_method`` is ``private_key_jwt`` (with
    ``jwks``) or ``spiffe`` (the client ID is a SPIFFE ID, authenticated by its SVIDs)."""

    client_id: str
    client_name: str
    auth_method: str
    grant_types: tuple[str, ...]
    scope: str | None
    jwks: Mapping[str, Any] | None
    created_at: datetime
    software_id: str | None = None
    software_version: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class ClientStore(Protocol):
    def put(self, client: OAuthClient) -> None:
        """Insert or replace the client with this ``client_id``."""
        ...

    def get(self, client_id: str) -> OAuthClient | None: ...

    def list(self) -> list[OAuthClient]: ...

    def delete(self, client_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What the AS needs about an agent definition: may it hold identities now, how it
    delegates, its approved checksum (bare hex) and whether a checksum change waits for
    recertification."""

    name: str
    state: str
    issues_identities: bool
    delegation: str
    checksum: str
    checksum_pending: bool


class AgentLookup(Protocol):
    def agent(self, name: str) -> AgentFacts | None: ...


class UserLookup(Protocol):
    def user_active(self, user_name: str) -> bool | None:
        """True/False for a person the directory knows, None for an unknown name."""
        ...
