"""Where the key-encryption key (KEK) of the disk key manager comes from.

The value of ``TABARD_KEK`` wins when it is set; otherwise the KEK is read from a key file,
which ``create=True`` makes on first start (32 random bytes, base64, mode 0600). The text is
used as the PKCS#8 encryption passphrase, so any string of at least 16 characters works.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from tabard.authority.errors import KekError

__all__ = ["KEK_ENV", "MIN_KEK_LENGTH", "load_kek"]

KEK_ENV = "TABARD_KEK"
MIN_KEK_LENGTH = 16
# Owner access, plus group read for secret mounts; never group-writable or readable by others.
_FORBIDDEN_MODE_BITS = 0o027


def load_kek(env_value: str | None, key_file: Path, *, create: bool) -> bytes:
    """The KEK from ``env_value`` (the value of ``TABARD_KEK``) or from ``key_file``.

    Raises :class:`KekError` (``kek_missing``) when neither exists and ``create`` is false,
    and (``kek_invalid``) for an empty/short value or a key file others can read.
    """
    if env_value is not None:
        value = env_value.strip()
        if len(value) < MIN_KEK_LENGTH:
            raise KekError(
                f"{KEK_ENV} is set but shorter than {MIN_KEK_LENGTH} characters",
                code="kek_invalid",
            )
        return value.encode()
    path = Path(key_file)
    if not path.exists():
        if not create:
            raise KekError(
                f"no key-encryption key: set {KEK_ENV} or provide the key file {path}",
                code="kek_missing",
            )
        _create_key_file(path)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & _FORBIDDEN_MODE_BITS:
        raise KekError(
            f"key file {path} is accessible to other users (mode {mode & 0o777:04o}); "
            "make it 0600",
            code="kek_invalid",
        )
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < MIN_KEK_LENGTH:
        raise KekError(
            f"key file {path} holds fewer than {MIN_KEK_LENGTH} characters", code="kek_invalid"
        )
    return value.encode()


def _create_key_file(path: Path) -> None:
    """Write a fresh KEK atomically; if another process wins the race, its file is kept."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = base64.b64encode(secrets.token_bytes(32)).decode() + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # exclusive: never overwrites an existing KEK
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
