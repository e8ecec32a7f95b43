"""SCIM bearer tokens: the credential an identity provider provisions users with.

They work like admin tokens (:mod:`.bearer_tokens`) but are a separate kind with their own
prefix and table: a SCIM token opens ``/scim/v2`` only, and an admin token never opens
``/scim/v2``.
"""

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
    "SCIM_TOKEN_PREFIX",
    "IssuedScimToken",
    "ScimClient",
    "ScimTokenRecord",
    "ScimTokenService",
    "ScimTokenStore",
]

SCIM_TOKEN_PREFIX = "tabard_scim_"

ScimTokenRecord = TokenRecord
ScimClient = TokenPrincipal
IssuedScimToken = IssuedToken
ScimTokenStore = TokenStore


class ScimTokenService(BearerTokenService):
    def __init__(self, store: TokenStore, clock: Clock) -> None:
        super().__init__(store, clock, prefix=SCIM_TOKEN_PREFIX, kind="scim", label="SCIM")
