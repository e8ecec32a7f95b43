"""The key manager contract: named private keys that never leave the process unencrypted.

The CA and the JWT signer take the in-process private key from :meth:`KeyManager.private_key`
and sign with it directly, which keeps minting at raw ``cryptography`` speed. Every
implementation passes the shared suite in ``tests/contract/keymanager/``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.authority.errors import InvalidKeyIdError, KeyManagerError

__all__ = [
    "KeyManager",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "check_key_id",
    "generate_private_key",
    "key_type_of",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_KEY_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


class KeyType(StrEnum):
    """Algorithms a key manager can generate; the value is the stable configuration name."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_4096 = "rsa-4096"


def generate_private_key(key_type: KeyType) -> PrivateKey:
    if key_type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if key_type is KeyType.RSA_2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type is KeyType.RSA_4096:
        return rsa.generate_private_key(public_exponent=65537, key_size=4096)
    raise KeyManagerError(f"unsupported key type {key_type!r}")


def key_type_of(key: PrivateKey | PublicKey) -> KeyType:
    """The :class:`KeyType` of a key; raises :class:`KeyManagerError` for other shapes."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return KeyType.EC_P256
        if isinstance(key.curve, ec.SECP384R1):
            return KeyType.EC_P384
    elif isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size == 2048:
            return KeyType.RSA_2048
        if key.key_size == 4096:
            return KeyType.RSA_4096
    raise KeyManagerError("unsupported key: expected EC P-256/P-384 or RSA 2048/4096")


def check_key_id(key_id: str) -> str:
    """Key IDs double as file names, so they are restricted to a safe alphabet."""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise InvalidKeyIdError(
            "key ID must be 1-128 characters of letters, digits, '.', '_' or '-', "
            "not starting with '.'"
        )
    return key_id


class KeyManager(Protocol):
    """Named asymmetric keys. Implementations are thread-safe."""

    def generate(self, key_id: str, key_type: KeyType = KeyType.EC_P256) -> PublicKey:
        """Create and store a new key; :class:`KeyExistsError` if ``key_id`` is taken."""
        ...

    def private_key(self, key_id: str) -> PrivateKey:
        """The in-process signer; :class:`KeyNotFoundError` if unknown."""
        ...

    def public_key(self, key_id: str) -> PublicKey: ...

    def delete(self, key_id: str) -> None:
        """Forget the key; deleting an unknown key is a no-op (retirement is idempotent)."""
        ...

    def key_ids(self) -> list[str]:
        """All stored key IDs, sorted."""
        ...
