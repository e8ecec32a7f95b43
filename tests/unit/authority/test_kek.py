"""Where the key-encryption key comes from: ``TABARD_KEK`` or a key file."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from tabard.authority.errors import KekError
from tabard.authority.keymanager import load_kek


def test_env_value_wins_over_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    key_file.write_text("file-value-that-is-long-enough")
    os.chmod(key_file, 0o600)
    assert load_kek("  env-value-long-enough-1234 \n", key_file, create=True) == (
        b"env-value-long-enough-1234"
    )


@pytest.mark.parametrize("value", ["", "   ", "zq9xk"])
def test_short_env_value_is_refused_without_echoing_it(tmp_path: Path, value: str) -> None:
    with pytest.raises(KekError) as info:
        load_kek(value, tmp_path / "kek", create=True)
    assert info.value.code == "kek_invalid"
    assert "TABARD_KEK" in str(info.value)
    if value.strip():
        assert value not in str(info.value)
    assert not (tmp_path / "kek").exists()


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key_file = tmp_path / "state" / "kek"
    old_umask = os.umask(0)
    try:
        first = load_kek(None, key_file, create=True)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert len(base64.b64decode(first)) == 32
    assert load_kek(None, key_file, create=True) == first
    assert load_kek(None, key_file, create=False) == first
    assert [p.name for p in key_file.parent.iterdir()] == ["kek"]


def test_missing_kek_is_an_error_without_create(tmp_path: Path) -> None:
    with pytest.raises(KekError) as info:
        load_kek(None, tmp_path / "kek", create=False)
    assert info.value.code == "kek_missing"
    assert "TABARD_KEK" in str(info.value) and str(tmp_path / "kek") in str(info.value)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    key_file.write_text("a-value-that-is-long-enough")
    os.chmod(key_file, 0o644)
    with pytest.raises(KekError, match="0600") as info:
        load_kek(None, key_file, create=False)
    assert "a-value-that-is-long-enough" not in str(info.value)
    os.chmod(key_file, 0o640)  # group read is allowed for secret mounts
    assert load_kek(None, key_file, create=False) == b"a-value-that-is-long-enough"


def test_short_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    key_file.write_text("tiny\n")
    os.chmod(key_file, 0o600)
    with pytest.raises(KekError, match="fewer than"):
        load_kek(None, key_file, create=False)
