"""The key manager contract (tabard.authority.keymanager.base.KeyManager).

Every implementation must pass this suite unchanged; ``conftest.py`` lists them.
"""

from __future__ import annotations

import threading

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tabard.authority.errors import (
    InvalidKeyIdError,
    KeyExistsError,
    KeyManagerError,
    KeyNotFoundError,
)
from tabard.authority.keymanager import KeyManager, KeyType, PrivateKey, PublicKey
from tabard.errors import Conflict, Invalid, NotFound

EXPECTED = {
    KeyType.EC_P256: (ec.EllipticCurvePublicKey, "secp256r1"),
    KeyType.EC_P384: (ec.EllipticCurvePublicKey, "secp384r1"),
    KeyType.RSA_2048: (rsa.RSAPublicKey, 2048),
    KeyType.RSA_4096: (rsa.RSAPublicKey, 4096),
}


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sign_and_verify(private: PrivateKey, public: PublicKey, message: bytes) -> None:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        assert isinstance(public, ec.EllipticCurvePublicKey)
        signature = private.sign(message, ec.ECDSA(hashes.SHA256()))
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidSignature):
            public.verify(signature, message + b"!", ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        signature = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        with pytest.raises(InvalidSignature):
            public.verify(signature, message + b"!", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("key_type", list(KeyType), ids=[t.value for t in KeyType])
def test_generate_load_and_sign_each_key_type(manager: KeyManager, key_type: KeyType) -> None:
    public = manager.generate("k1", key_type)
    cls, size = EXPECTED[key_type]
    assert isinstance(public, cls)
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert public.curve.name == size
    else:
        assert public.key_size == size
    private = manager.private_key("k1")
    assert _spki(private.public_key()) == _spki(public)
    assert _spki(manager.public_key("k1")) == _spki(public)
    _sign_and_verify(private, manager.public_key("k1"), b"tabard")


def test_default_key_type_is_ec_p256(manager: KeyManager) -> None:
    public = manager.generate("default")
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"


def test_keys_are_independent(manager: KeyManager) -> None:
    a = manager.generate("a")
    b = manager.generate("b")
    assert _spki(a) != _spki(b)
    assert manager.key_ids() == ["a", "b"]


def test_generate_never_replaces_an_existing_key(manager: KeyManager) -> None:
    first = manager.generate("same")
    with pytest.raises(KeyExistsError) as info:
        manager.generate("same", KeyType.EC_P384)
    assert isinstance(info.value, Conflict)
    assert info.value.code == "key_exists"
    assert _spki(manager.public_key("same")) == _spki(first)


def test_unknown_key_is_not_found(manager: KeyManager) -> None:
    with pytest.raises(KeyNotFoundError) as info:
        manager.private_key("missing")
    assert isinstance(info.value, NotFound)
    assert isinstance(info.value, KeyManagerError)
    with pytest.raises(KeyNotFoundError):
        manager.public_key("missing")


def test_delete_forgets_the_key_and_is_idempotent(manager: KeyManager) -> None:
    manager.generate("gone")
    manager.generate("kept")
    manager.delete("gone")
    manager.delete("gone")
    manager.delete("never-existed")
    assert manager.key_ids() == ["kept"]
    with pytest.raises(KeyNotFoundError):
        manager.private_key("gone")
    manager.generate("gone")  # the ID is free again
    assert manager.key_ids() == ["gone", "kept"]


@pytest.mark.parametrize(
    "key_id", ["", ".hidden", "../escape", "a/b", "a\\b", "x" * 129, "sp ace", "ü"]
)
def test_unsafe_key_ids_are_refused(manager: KeyManager, key_id: str) -> None:
    with pytest.raises(InvalidKeyIdError) as info:
        manager.generate(key_id)
    assert isinstance(info.value, Invalid)
    assert manager.key_ids() == []


def test_concurrent_generation(manager: KeyManager) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            manager.generate(f"key-{n:02d}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert manager.key_ids() == [f"key-{n:02d}" for n in range(16)]
