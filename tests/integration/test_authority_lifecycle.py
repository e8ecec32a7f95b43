"""Rotation, retirement, restart and key protection, driven through the CLI and REST."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tabard.spiffe import Bundle, JwtSvidError, TrustDomain, X509SvidError
from tabard.spiffe.jwtsvid import verify_jwt_svid
from tabard.spiffe.x509svid import verify_x509_svid
from tests.support.platform import DevPlatform

TD = TrustDomain("example.org")


def bundle_of(platform: DevPlatform) -> Bundle:
    return Bundle.parse(TD, httpx.get(f"{platform.url}/bundle").text)


def mint_x509(platform: DevPlatform, out: Path) -> list[x509.Certificate]:
    result = platform.cli("x509", "mint", "--spiffe-id", "spiffe://example.org/w",
                          "--out-dir", str(out))
    assert result.returncode == 0, result.stderr
    return x509.load_pem_x509_certificates((out / "svid.pem").read_bytes())


def mint_jwt(platform: DevPlatform) -> str:
    result = platform.cli("jwt", "mint", "--spiffe-id", "spiffe://example.org/w", "-a", "svc")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def authorities(platform: DevPlatform) -> list[dict[str, str]]:
    result = platform.cli("authority", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, str]] = json.loads(result.stdout)
    return rows


def test_rotation_overlap_then_retirement(backend_platform: DevPlatform, tmp_path: Path) -> None:
    platform = backend_platform
    old_chain, old_token = mint_x509(platform, tmp_path / "old"), mint_jwt(platform)
    before = bundle_of(platform)

    rotated = platform.cli("authority", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_chain, new_token = mint_x509(platform, tmp_path / "new"), mint_jwt(platform)
    overlap = bundle_of(platform)
    now = datetime.now(UTC)
    assert overlap.sequence > before.sequence
    assert old_chain[-1].issuer != new_chain[-1].issuer or old_chain[-1] != new_chain[-1]

    # during the overlap SVIDs of both authorities validate, and openssl agrees
    for chain in (old_chain, new_chain):
        assert verify_x509_svid(chain, overlap, at=now).path == "/w"
    for token in (old_token, new_token):
        assert str(verify_jwt_svid(token, overlap, "svc", now=now.timestamp()).spiffe_id) == (
            "spiffe://example.org/w")
    (tmp_path / "overlap.pem").write_text(overlap.x509_pem())
    for name in ("old", "new"):
        assert subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "overlap.pem"),
                               str(tmp_path / name / "svid.pem")], check=False,
                              capture_output=True).returncode == 0

    states = {(r["kind"], r["state"]) for r in authorities(platform)}
    assert {("x509", "active"), ("x509", "old"), ("jwt", "active"), ("jwt", "old")} <= states

    for row in authorities(platform):
        if row["state"] == "old":
            retired = platform.cli("authority", "retire", row["id"][:12])
            assert retired.returncode == 0, retired.stderr
    after = bundle_of(platform)
    assert after.sequence > overlap.sequence
    with pytest.raises(X509SvidError) as x509_error:
        verify_x509_svid(old_chain, after, at=now)
    assert x509_error.value.reason == "unknown_authority"
    with pytest.raises(JwtSvidError) as jwt_error:
        verify_jwt_svid(old_token, after, "svc", now=now.timestamp())
    assert jwt_error.value.reason == "unknown_kid"
    assert verify_x509_svid(new_chain, after, at=now).path == "/w"
    verify_jwt_svid(new_token, after, "svc", now=now.timestamp())
    (tmp_path / "after.pem").write_text(after.x509_pem())
    assert subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "after.pem"),
                           str(tmp_path / "old" / "svid.pem")], check=False,
                          capture_output=True).returncode != 0


def test_keys_and_ca_survive_a_restart(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "dev"
    with DevPlatform(data, database_url=database_url) as first:
        bundle = bundle_of(first)
        chain = mint_x509(first, tmp_path / "svid")
        token = mint_jwt(first)
    with DevPlatform(data, database_url=database_url) as second:
        again = bundle_of(second)
        assert again.x509_authorities == bundle.x509_authorities
        assert {a.key_id for a in again.jwt_authorities} == {a.key_id for a in
                                                             bundle.jwt_authorities}
        now = datetime.now(UTC)
        verify_x509_svid(chain, again, at=now)
        verify_jwt_svid(token, again, "svc", now=now.timestamp())
        # and the restarted server still signs with the same CA
        verify_x509_svid(mint_x509(second, tmp_path / "svid2"), bundle, at=now)


def test_private_keys_cannot_be_read_without_the_kek(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    with DevPlatform(data, extra_env={"TABARD_KEK": "correct horse battery staple kek"}):
        pass
    key_files = sorted((data / "keys").iterdir())
    assert len(key_files) >= 2
    for path in key_files:
        assert path.stat().st_mode & 0o777 == 0o600
        pem = path.read_bytes()
        assert b"ENCRYPTED PRIVATE KEY" in pem
        with pytest.raises((TypeError, ValueError)):
            serialization.load_pem_private_key(pem, password=None)
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(pem, password=b"wrong kek")
    wrong = DevPlatform(data, extra_env={"TABARD_KEK": "a different kek"})
    with pytest.raises(RuntimeError) as failed:
        wrong.start()
    assert "Traceback" not in failed.value.args[0]
    assert "key" in failed.value.args[0].lower()
