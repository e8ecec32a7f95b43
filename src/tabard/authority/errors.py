"""Errors of the authority: key managers, the CA, JWT signing and rotation.

Each class carries a stable ``code`` and sits under one :mod:`tabard.errors` category, so
interfaces map it to HTTP/gRPC/CLI without reading messages. No message ever holds key
material or the key-encryption key.

    KeyManagerError
    ├── KeyNotFoundError      (NotFound)      key_not_found
    ├── KeyExistsError        (Conflict)      key_exists
    ├── InvalidKeyIdError     (Invalid)       invalid_key_id
    ├── KekError              (Invalid)       kek_missing / kek_invalid
    └── KeyDecryptError       (Unavailable)   key_decrypt_failed
    SvidRequestError          (Invalid)       invalid_svid_request
    CaCertificateError        (Invalid)       invalid_ca_certificate
    CaExpiredError            (Unavailable)   ca_expired
    AuthorityNotReadyError    (Unavailable)   authority_not_ready
    AuthorityNotFoundError    (NotFound)      authority_not_found
    AuthorityStateError       (Conflict)      authority_state_conflict
"""

from __future__ import annotations

from tabard.errors import Conflict, Invalid, NotFound, TabardError, Unavailable

__all__ = [
    "AuthorityNotFoundError",
    "AuthorityNotReadyError",
    "AuthorityStateError",
    "CaCertificateError",
    "CaExpiredError",
    "InvalidKeyIdError",
    "KekError",
    "KeyDecryptError",
    "KeyExistsError",
    "KeyManagerError",
    "KeyNotFoundError",
    "SvidRequestError",
]


class KeyManagerError(TabardError):
    """Root of key manager failures; catch it to handle any of them."""

    code = "key_manager_error"


class KeyNotFoundError(KeyManagerError, NotFound):
    code = "key_not_found"


class KeyExistsError(KeyManagerError, Conflict):
    """``generate`` was asked for a key ID that is already taken; keys are never replaced."""

    code = "key_exists"


class InvalidKeyIdError(KeyManagerError, Invalid):
    code = "invalid_key_id"


class KekError(KeyManagerError, Invalid):
    """The key-encryption key is missing or unusable (the message never contains it)."""

    code = "kek_invalid"


class KeyDecryptError(KeyManagerError, Unavailable):
    """A stored key could not be decrypted: wrong key-encryption key or a damaged file."""

    code = "key_decrypt_failed"


class SvidRequestError(Invalid):
    """A mint request the CA or signer refuses (foreign trust domain, no path, bad TTL...)."""

    code = "invalid_svid_request"


class CaCertificateError(Invalid):
    """A CA certificate/key pair (own or upstream) that cannot sign what it is asked to."""

    code = "invalid_ca_certificate"


class CaExpiredError(Unavailable):
    """The signing authority is past its ``not_after``; rotation has not happened in time."""

    code = "ca_expired"


class AuthorityNotReadyError(Unavailable):
    """Minting before :meth:`Authority.ensure_initialized`, or a key the key manager lacks."""

    code = "authority_not_ready"


class AuthorityNotFoundError(NotFound):
    code = "authority_not_found"


class AuthorityStateError(Conflict):
    """A state change the rotation rules forbid (retiring the active key, a lost race)."""

    code = "authority_state_conflict"
