"""The authority of a trust domain: signing keys, the X.509 CA, JWT-SVID signing, rotation.

Start with :class:`Authority` (the facade the server uses); :mod:`.keymanager` holds the
private keys, :mod:`.ca` and :mod:`.jwt` only sign, :mod:`.ports` declares the persistence
the authority needs.
"""

from tabard.authority.ca import (
    CertificateAuthority,
    UpstreamCA,
    X509SvidParams,
    intermediate_signed_by_upstream,
    self_signed_root,
)
from tabard.authority.errors import (
    AuthorityNotFoundError,
    AuthorityNotReadyError,
    AuthorityStateError,
    CaCertificateError,
    CaExpiredError,
    InvalidKeyIdError,
    KekError,
    KeyDecryptError,
    KeyExistsError,
    KeyManagerError,
    KeyNotFoundError,
    SvidRequestError,
)
from tabard.authority.jwt import JwtAlgorithm, JwtSigner
from tabard.authority.keymanager import (
    DiskKeyManager,
    KeyManager,
    KeyType,
    MemoryKeyManager,
    PrivateKey,
    PublicKey,
    load_kek,
)
from tabard.authority.ports import (
    AuthorityKeyRecord,
    AuthorityKind,
    AuthorityState,
    AuthorityStore,
)
from tabard.authority.service import Authority, MintedX509Svid

__all__ = [
    "Authority",
    "AuthorityKeyRecord",
    "AuthorityKind",
    "AuthorityNotFoundError",
    "AuthorityNotReadyError",
    "AuthorityState",
    "AuthorityStateError",
    "AuthorityStore",
    "CaCertificateError",
    "CaExpiredError",
    "CertificateAuthority",
    "DiskKeyManager",
    "InvalidKeyIdError",
    "JwtAlgorithm",
    "JwtSigner",
    "KekError",
    "KeyDecryptError",
    "KeyExistsError",
    "KeyManager",
    "KeyManagerError",
    "KeyNotFoundError",
    "KeyType",
    "MemoryKeyManager",
    "MintedX509Svid",
    "PrivateKey",
    "PublicKey",
    "SvidRequestError",
    "UpstreamCA",
    "X509SvidParams",
    "intermediate_signed_by_upstream",
    "load_kek",
    "self_signed_root",
]
