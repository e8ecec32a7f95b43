"""A full run's logs and output never hold a secret tabard minted or was given."""

from __future__ import annotations

from pathlib import Path

from tests.support.platform import DevPlatform


def test_logs_hold_no_minted_secret(tmp_path: Path) -> None:
    with DevPlatform(tmp_path / "dev", extra_env={"TABARD_LOG_LEVEL": "debug",
                                                  "TABARD_KEK": "kek-value-never-logged"}) as p:
        token = p.cli("jwt", "mint", "--spiffe-id", "spiffe://example.org/a", "-a", "x").stdout
        minted = p.cli("x509", "mint", "--spiffe-id", "spiffe://example.org/a",
                       "--out-dir", str(tmp_path / "svid"))
        assert minted.returncode == 0
        created = p.http().post("/api/v1/admin-tokens", json={"name": "extra"}).json()["token"]
        p.http().get("/api/v1/authorities", headers={"Authorization": "Bearer tabard_admin_bad"})
        admin = p.admin_token
    logs = p.logs() + p.output()
    assert logs.strip(), "the run wrote no logs at all"
    key_body = (tmp_path / "svid" / "svid.key").read_text().splitlines()[1]
    for secret in (token.strip(), admin, created, "kek-value-never-logged", key_body):
        assert secret and secret not in logs
    for path in (tmp_path / "dev" / "keys").iterdir():
        body = path.read_text().splitlines()[1]
        assert body not in logs
