"""The humans and administrators tabard answers to: admin API credentials (users, groups,
roles and SCIM provisioning join later)."""

from tabard.directory.admin_tokens import (
    TOKEN_PREFIX,
    AdminPrincipal,
    AdminTokenRecord,
    AdminTokenService,
    AdminTokenStore,
    IssuedAdminToken,
)

__all__ = [
    "TOKEN_PREFIX",
    "AdminPrincipal",
    "AdminTokenRecord",
    "AdminTokenService",
    "AdminTokenStore",
    "IssuedAdminToken",
]
