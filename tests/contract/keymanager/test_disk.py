"""Properties of the disk key manager beyond the shared contract: persistence and encryption."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.authority.errors import KekError, KeyDecryptError
from tabard.authority.keymanager import DiskKeyManager, KeyType, PublicKey
from tabard.errors import Unavailable

KEK = b"disk-test-key-encryption-key-0001"


def _spki_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_keys_persist_across_instances(tmp_path: Path) -> None:
    first = DiskKeyManager(tmp_path / "keys", KEK)
    ec_pub = first.generate("ca-1", KeyType.EC_P256)
    rsa_pub = first.generate("jwt-1", KeyType.RSA_2048)
    second = DiskKeyManager(tmp_path / "keys", KEK)
    assert second.key_ids() == ["ca-1", "jwt-1"]
    assert _spki_der(second.public_key("ca-1")) == _spki_der(ec_pub)
    assert _spki_der(second.private_key("jwt-1").public_key()) == _spki_der(rsa_pub)


def test_key_written_by_another_instance_is_found(tmp_path: Path) -> None:
    reader = DiskKeyManager(tmp_path / "keys", KEK)
    writer = DiskKeyManager(tmp_path / "keys", KEK)
    public = writer.generate("later")
    assert _spki_der(reader.public_key("later")) == _spki_der(public)


def test_wrong_kek_is_refused_without_revealing_secrets(tmp_path: Path) -> None:
    manager = DiskKeyManager(tmp_path / "keys", KEK)
    manager.generate("ca-1")
    wrong = b"another-key-encryption-key-00002"
    with pytest.raises(KeyDecryptError) as info:
        DiskKeyManager(tmp_path / "keys", wrong)
    error = info.value
    assert isinstance(error, Unavailable)
    assert error.code == "key_decrypt_failed"
    text = str(error)
    assert "ca-1" in text
    assert KEK.decode() not in text and wrong.decode() not in text
    assert "PRIVATE KEY" not in text


def test_empty_kek_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KekError) as info:
        DiskKeyManager(tmp_path / "keys", b"")
    assert info.value.code == "kek_missing"


def test_files_are_encrypted_and_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    old_umask = os.umask(0)
    try:
        manager = DiskKeyManager(directory, KEK)
        manager.generate("ca-1")
        manager.generate("ca-2", KeyType.EC_P384)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["ca-1.key.pem", "ca-2.key.pem"]  # no temporary files left behind
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = path.read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(data, password=None)


def test_existing_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    DiskKeyManager(directory, KEK)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_delete_removes_the_file(tmp_path: Path) -> None:
    manager = DiskKeyManager(tmp_path / "keys", KEK)
    manager.generate("old")
    manager.delete("old")
    assert not (tmp_path / "keys" / "old.key.pem").exists()
    assert DiskKeyManager(tmp_path / "keys", KEK).key_ids() == []


def test_plaintext_key_file_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    DiskKeyManager(directory, KEK)
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / "planted.key.pem").write_bytes(plain)
    with pytest.raises(KeyDecryptError, match="not encrypted"):
        DiskKeyManager(directory, KEK)


def test_damaged_key_file_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    DiskKeyManager(directory, KEK).generate("ca-1")
    path = directory / "ca-1.key.pem"
    path.write_bytes(path.read_bytes()[:80] + b"garbage\n-----END ENCRYPTED PRIVATE KEY-----\n")
    with pytest.raises(KeyDecryptError):
        DiskKeyManager(directory, KEK)
