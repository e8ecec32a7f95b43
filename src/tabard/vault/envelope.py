"""AES-256-GCM envelope encryption of secret values.

Each secret version gets its own fresh 256-bit data key. The value is sealed under the data
key; the data key is sealed (wrapped) under the vault's wrapping key, which HKDF-SHA256
derives from the deployment's key-encryption key (KEK, the one the authority's key files use,
``TABARD_KEK`` or the key file). Each seal has its own random 96-bit nonce and additional
authenticated data binding it to the secret's name and version, so a ciphertext moved to
another row, name or version does not open. Only ciphertexts, nonces, the wrapped key and a
KEK id (a fingerprint that says which KEK wrapped it, not the KEK) are stored.

    value AAD   = "tabard-vault/v1" 0x00 "value" 0x00 name 0x00 version
    data-key AAD = "tabard-vault/v1" 0x00 "dek" 0x00 name 0x00 version 0x00 kek_id
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tabard.vault.errors import SecretDecryptError

__all__ = ["ALGORITHM", "Envelope", "EnvelopeCipher"]

ALGORITHM = "A256GCM"
_PREFIX = b"tabard-vault/v1"
_NONCE_BYTES = 12


def _derive(kek: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(kek)


@dataclass(frozen=True, repr=False)
class Envelope:
    """What is stored of one secret version: nothing here opens without the KEK."""

    kek_id: str
    nonce: bytes
    ciphertext: bytes
    key_nonce: bytes
    wrapped_key: bytes
    algorithm: str = ALGORITHM

    def __repr__(self) -> str:
        return f"Envelope(kek_id={self.kek_id!r}, algorithm={self.algorithm!r})"


class EnvelopeCipher:
    """Seals and opens secret values under one KEK (any byte string; it is only ever used
    through HKDF)."""

    def __init__(self, kek: bytes) -> None:
        if not kek:
            raise ValueError("the key-encryption key must not be empty")
        self._wrap = AESGCM(_derive(kek, b"tabard vault wrapping key v1", 32))
        self.kek_id = _derive(kek, b"tabard vault kek id v1", 8).hex()

    def __repr__(self) -> str:
        return f"EnvelopeCipher(kek_id={self.kek_id!r})"

    @staticmethod
    def _aad(kind: bytes, name: str, version: int, *extra: bytes) -> bytes:
        parts = [_PREFIX, kind, name.encode(), str(version).encode(), *extra]
        return b"\x00".join(parts)

    def seal(self, name: str, version: int, value: bytes) -> Envelope:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce, key_nonce = os.urandom(_NONCE_BYTES), os.urandom(_NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, value, self._aad(b"value", name, version))
        wrapped = self._wrap.encrypt(
            key_nonce, data_key, self._aad(b"dek", name, version, self.kek_id.encode()))
        return Envelope(self.kek_id, nonce, ciphertext, key_nonce, wrapped)

    def open(self, name: str, version: int, envelope: Envelope) -> bytes:
        if envelope.algorithm != ALGORITHM:
            raise SecretDecryptError(
                f"secret {name!r} version {version} uses an unknown algorithm")
        if not hmac.compare_digest(envelope.kek_id, self.kek_id):
            raise SecretDecryptError(
                f"secret {name!r} version {version} was sealed under another key-encryption "
                f"key (id {envelope.kek_id}; this server has {self.kek_id})")
        try:
            data_key = self._wrap.decrypt(
                envelope.key_nonce, envelope.wrapped_key,
                self._aad(b"dek", name, version, envelope.kek_id.encode()))
            return AESGCM(data_key).decrypt(
                envelope.nonce, envelope.ciphertext, self._aad(b"value", name, version))
        except InvalidTag:
            raise SecretDecryptError(
                f"secret {name!r} version {version} does not open: damaged, or moved from "
                "another name or version") from None
