"""A key manager that keeps each key in its own encrypted PKCS#8 file.

Files are ``<key_id>.key.pem`` in a directory of mode 0700, each of mode 0600, encrypted with
the key-encryption key (KEK) through ``BestAvailableEncryption``, and written atomically
(temporary file, fsync, rename). Keys are decrypted once, when the manager opens, and then
kept in memory, so a wrong KEK is refused at start-up rather than at the first signature.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.authority.errors import (
    KekError,
    KeyDecryptError,
    KeyExistsError,
    KeyNotFoundError,
)
from tabard.authority.keymanager.base import (
    KeyType,
    PrivateKey,
    PublicKey,
    check_key_id,
    generate_private_key,
)

__all__ = ["DiskKeyManager"]

_SUFFIX = ".key.pem"


class DiskKeyManager:
    """Encrypted-at-rest keys under ``directory``; opening it decrypts every stored key."""

    def __init__(self, directory: Path | str, kek: bytes) -> None:
        if not isinstance(kek, bytes) or not kek:
            raise KekError("the key-encryption key must be non-empty bytes", code="kek_missing")
        self._dir = Path(directory)
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)
        self._kek = kek
        self._keys: dict[str, PrivateKey] = {}
        self._lock = threading.Lock()
        for path in sorted(self._dir.glob("*" + _SUFFIX)):
            key_id = path.name[: -len(_SUFFIX)]
            self._keys[key_id] = self._load(key_id, path)

    @property
    def directory(self) -> Path:
        return self._dir

    def _path(self, key_id: str) -> Path:
        return self._dir / (check_key_id(key_id) + _SUFFIX)

    def _load(self, key_id: str, path: Path) -> PrivateKey:
        data = path.read_bytes()
        try:
            key = serialization.load_pem_private_key(data, password=self._kek)
        except TypeError as exc:  # the file is not encrypted: refuse plaintext keys
            raise KeyDecryptError(f"key file {path.name!r} is not encrypted") from exc
        except ValueError as exc:
            raise KeyDecryptError(
                f"key file {path.name!r} could not be decrypted: the key-encryption key "
                "does not match or the file is damaged"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyDecryptError(f"key file {path.name!r} holds an unsupported key type")
        return key

    def _write(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self._dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def generate(self, key_id: str, key_type: KeyType = KeyType.EC_P256) -> PublicKey:
        path = self._path(key_id)
        key = generate_private_key(KeyType(key_type))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._kek),
        )
        with self._lock:
            if key_id in self._keys or path.exists():
                raise KeyExistsError(f"key {key_id!r} already exists")
            self._write(path, pem)
            self._keys[key_id] = key
        return key.public_key()

    def private_key(self, key_id: str) -> PrivateKey:
        with self._lock:
            key = self._keys.get(key_id)
            if key is not None:
                return key
            path = self._path(key_id)
            if not path.exists():
                raise KeyNotFoundError(f"no key {key_id!r}")
            # written by another process sharing the directory since we opened it
            key = self._load(key_id, path)
            self._keys[key_id] = key
            return key

    def public_key(self, key_id: str) -> PublicKey:
        return self.private_key(key_id).public_key()

    def delete(self, key_id: str) -> None:
        path = self._path(key_id)
        with self._lock:
            self._keys.pop(key_id, None)
            try:
                path.unlink()
            except FileNotFoundError:
                return
            self._fsync_dir()

    def key_ids(self) -> list[str]:
        with self._lock:
            on_disk = {p.name[: -len(_SUFFIX)] for p in self._dir.glob("*" + _SUFFIX)}
            return sorted(on_disk | set(self._keys))
