"""Admin API tokens: bearer tokens of the kind ``tabard_admin_`` (see :mod:`.bearer_tokens`)."""

from __future__ import annotations

from tabard.clock import Clock
from tabard.directory.bearer_tokens import (
    BearerTokenService,
    IssuedToken,
    TokenPrincipal,
    TokenRecord,
    TokenStore,
)

__all__ = [
    "TOKEN_PREFIX",
    "AdminPrincipal",
    "AdminTokenRecord",
    "AdminTokenService",
    "AdminTokenStore",
    "IssuedAdminToken",
]

TOKEN_PREFIX = "tabard_admin_"

AdminTokenRecord = TokenRecord
AdminPrincipal = TokenPrincipal
IssuedAdminToken = IssuedToken
AdminTokenStore = TokenStore


class AdminTokenService(BearerTokenService):
    def __init__(self, store: TokenStore, clock: Clock) -> None:
        super().__init__(store, clock, prefix=TOKEN_PREFIX, kind="admin", label="admin")
