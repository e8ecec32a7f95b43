"""A key manager that keeps keys in memory only: for tests and throwaway dev servers."""

from __future__ import annotations

import threading

from tabard.authority.errors import KeyExistsError, KeyNotFoundError
from tabard.authority.keymanager.base import (
    KeyType,
    PrivateKey,
    PublicKey,
    check_key_id,
    generate_private_key,
)

__all__ = ["MemoryKeyManager"]


class MemoryKeyManager:
    """Keys live as long as the object; nothing touches the disk."""

    def __init__(self) -> None:
        self._keys: dict[str, PrivateKey] = {}
        self._lock = threading.Lock()

    def generate(self, key_id: str, key_type: KeyType = KeyType.EC_P256) -> PublicKey:
        check_key_id(key_id)
        key = generate_private_key(KeyType(key_type))
        with self._lock:
            if key_id in self._keys:
                raise KeyExistsError(f"key {key_id!r} already exists")
            self._keys[key_id] = key
        return key.public_key()

    def private_key(self, key_id: str) -> PrivateKey:
        with self._lock:
            key = self._keys.get(key_id)
        if key is None:
            raise KeyNotFoundError(f"no key {key_id!r}")
        return key

    def public_key(self, key_id: str) -> PublicKey:
        return self.private_key(key_id).public_key()

    def delete(self, key_id: str) -> None:
        with self._lock:
            self._keys.pop(key_id, None)

    def key_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)
