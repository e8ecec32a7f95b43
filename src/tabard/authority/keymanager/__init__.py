"""Key managers: the contract (:class:`KeyManager`), an in-memory and an encrypted disk store."""

from tabard.authority.keymanager.base import (
    KeyManager,
    KeyType,
    PrivateKey,
    PublicKey,
    generate_private_key,
    key_type_of,
)
from tabard.authority.keymanager.disk import DiskKeyManager
from tabard.authority.keymanager.kek import KEK_ENV, load_kek
from tabard.authority.keymanager.memory import MemoryKeyManager

__all__ = [
    "KEK_ENV",
    "DiskKeyManager",
    "KeyManager",
    "KeyType",
    "MemoryKeyManager",
    "PrivateKey",
    "PublicKey",
    "generate_private_key",
    "key_type_of",
    "load_kek",
]
