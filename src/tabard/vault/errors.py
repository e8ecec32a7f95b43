"""Errors of the vault: one class per rule, each with a stable ``code``.

No message ever holds a secret value, a data key or a token: only names, versions and ids.
"""

from __future__ import annotations

from tabard.errors import Conflict, Invalid, NotFound, Unavailable

__all__ = [
    "CredentialUnavailableError",
    "LeaseNotFoundError",
    "ProviderConfigError",
    "SecretDecryptError",
    "SecretExistsError",
    "SecretNameError",
    "SecretNotFoundError",
    "SecretValueError",
    "SecretVersionConflictError",
]


class SecretNameError(Invalid):
    code = "invalid_secret_name"


class SecretValueError(Invalid):
    """An empty or oversize value (the message says which, never what)."""

    code = "invalid_secret_value"


class SecretNotFoundError(NotFound):
    code = "secret_not_found"


class SecretExistsError(Conflict):
    code = "secret_exists"


class SecretVersionConflictError(Conflict):
    """Another writer rotated or deleted the secret at the same moment; try again."""

    code = "secret_version_conflict"


class SecretDecryptError(Unavailable):
    """A stored version cannot be opened: another key-encryption key, or damaged rows."""

    code = "secret_undecryptable"


class LeaseNotFoundError(NotFound):
    code = "lease_not_found"


class ProviderConfigError(Invalid):
    """A credential provider configured against its rules (TTL above the cap, no header)."""

    code = "invalid_credential_provider"


class CredentialUnavailableError(Unavailable):
    """The upstream's token endpoint refused or could not be reached."""

    code = "credential_unavailable"
