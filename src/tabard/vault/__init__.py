"""The vault: encrypted secrets, just-in-time credential providers and their leases.

:class:`Vault` stores secret values under AES-256-GCM envelope encryption
(:mod:`.envelope`) with versions, rotation and destruction; values leave it only through
:meth:`Vault.reveal`, to a credential provider in the same process. Providers
(:mod:`.providers`) turn a request's context into headers for the upstream and record each
issue as a :class:`Lease` (:class:`Leases`), which an operator lists and revokes, one by one
or all of an agent at once. Design: ``docs/design/vault.md``.
"""

from tabard.vault.envelope import ALGORITHM, Envelope, EnvelopeCipher
from tabard.vault.errors import (
    CredentialUnavailableError,
    LeaseNotFoundError,
    ProviderConfigError,
    SecretDecryptError,
    SecretExistsError,
    SecretNameError,
    SecretNotFoundError,
    SecretValueError,
    SecretVersionConflictError,
)
from tabard.vault.leases import MAX_LEASE_PAGE, Leases, new_lease_id
from tabard.vault.model import (
    MAX_SECRET_BYTES,
    Lease,
    LeaseQuery,
    ProviderKind,
    SecretMeta,
    SecretValue,
    SecretVersion,
    VersionState,
    check_secret_name,
)
from tabard.vault.ports import LeaseStore, SecretStore
from tabard.vault.providers import (
    MAX_DOWNSTREAM_JWT_TTL,
    ClientCredentialsProvider,
    Credential,
    CredentialContext,
    CredentialProvider,
    DownstreamJwtProvider,
    DownstreamSigner,
    SecretReader,
    StaticSecretProvider,
)
from tabard.vault.secrets import DEFAULT_ROTATION_GRACE, SecretDetails, Vault

__all__ = [
    "ALGORITHM",
    "DEFAULT_ROTATION_GRACE",
    "MAX_DOWNSTREAM_JWT_TTL",
    "MAX_LEASE_PAGE",
    "MAX_SECRET_BYTES",
    "ClientCredentialsProvider",
    "Credential",
    "CredentialContext",
    "CredentialProvider",
    "CredentialUnavailableError",
    "DownstreamJwtProvider",
    "DownstreamSigner",
    "Envelope",
    "EnvelopeCipher",
    "Lease",
    "LeaseNotFoundError",
    "LeaseQuery",
    "LeaseStore",
    "Leases",
    "ProviderConfigError",
    "ProviderKind",
    "SecretDecryptError",
    "SecretDetails",
    "SecretExistsError",
    "SecretMeta",
    "SecretNameError",
    "SecretNotFoundError",
    "SecretReader",
    "SecretStore",
    "SecretValue",
    "SecretValueError",
    "SecretVersion",
    "SecretVersionConflictError",
    "StaticSecretProvider",
    "Vault",
    "VersionState",
    "check_secret_name",
    "new_lease_id",
]
