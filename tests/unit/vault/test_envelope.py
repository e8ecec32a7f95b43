"""Envelope encryption: a fresh data key and nonces per seal, AAD bound to name and version,
refused under another KEK, nothing of the value in what is stored."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tabard.vault import Envelope, EnvelopeCipher, SecretDecryptError, SecretValue

KEK = b"0123456789abcdef-kek"


def test_round_trip_and_fresh_randomness_per_seal() -> None:
    cipher = EnvelopeCipher(KEK)
    a, b = cipher.seal("n", 1, b"value"), cipher.seal("n", 1, b"value")
    assert cipher.open("n", 1, a) == b"value" == cipher.open("n", 1, b)
    assert a.nonce != b.nonce and a.key_nonce != b.key_nonce
    assert a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key
    assert len(a.nonce) == len(a.key_nonce) == 12
    assert len(a.wrapped_key) == 32 + 16  # a 256-bit data key plus the GCM tag
    assert b"value" not in a.ciphertext + a.wrapped_key
    assert a.kek_id == cipher.kek_id and len(a.kek_id) == 16 and KEK.hex() not in a.kek_id


@pytest.mark.parametrize("name,version", [("other", 1), ("n", 2)])
def test_an_envelope_moved_to_another_name_or_version_does_not_open(
        name: str, version: int) -> None:
    cipher = EnvelopeCipher(KEK)
    sealed = cipher.seal("n", 1, b"value")
    with pytest.raises(SecretDecryptError, match="does not open"):
        cipher.open(name, version, sealed)


@pytest.mark.parametrize("field", ["ciphertext", "wrapped_key", "nonce", "key_nonce"])
def test_tampering_is_detected(field: str) -> None:
    cipher = EnvelopeCipher(KEK)
    sealed = cipher.seal("n", 1, b"value")
    damaged = bytearray(getattr(sealed, field))
    damaged[0] ^= 1
    with pytest.raises(SecretDecryptError):
        cipher.open("n", 1, replace(sealed, **{field: bytes(damaged)}))


def test_another_kek_is_named_by_id_not_value() -> None:
    sealed = EnvelopeCipher(KEK).seal("n", 1, b"value")
    other = EnvelopeCipher(b"another-kek-of-16+chars")
    with pytest.raises(SecretDecryptError) as caught:
        other.open("n", 1, sealed)
    assert sealed.kek_id in str(caught.value) and "another-kek" not in str(caught.value)
    forged = Envelope(other.kek_id, sealed.nonce, sealed.ciphertext, sealed.key_nonce,
                      sealed.wrapped_key)
    with pytest.raises(SecretDecryptError):
        other.open("n", 1, forged)


def test_reprs_hide_key_material_and_values() -> None:
    cipher = EnvelopeCipher(KEK)
    sealed = cipher.seal("n", 1, b"value")
    assert repr(sealed) == f"Envelope(kek_id={cipher.kek_id!r}, algorithm='A256GCM')"
    assert KEK.decode() not in repr(cipher)
    revealed = SecretValue("n", 1, b"top-secret")
    assert "top-secret" not in repr(revealed) and "top-secret" not in str(revealed)
    assert f"{revealed}" == repr(revealed)
