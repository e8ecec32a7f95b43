"""The CLI as a person and a script use it: help with examples, JSON, exit codes."""

from __future__ import annotations

import json

import pytest

from tests.support.platform import DevPlatform, run_cli

COMMANDS = [
    ["server"], ["dev"], ["config", "show"], ["bundle", "show"], ["x509", "mint"],
    ["jwt", "mint"], ["authority", "list"], ["authority", "rotate"], ["authority", "retire"],
    ["admin-token", "create"], ["admin-token", "list"], ["admin-token", "revoke"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def test_bad_input_exits_2_with_one_line(platform: DevPlatform) -> None:
    cases = [
        ["x509", "mint", "--spiffe-id", "spiffe://example.org/a/../b", "--out-dir", "/tmp/x"],
        ["jwt", "mint", "--spiffe-id", "spiffe://example.org/web"],
        ["jwt", "mint", "--spiffe-id", "spiffe://example.org/web", "-a", "x", "--ttl", "soon"],
        ["bundle", "show", "--format", "der"],
        ["authority", "rotate", "--kind", "rsa"],
        ["no-such-command"],
    ]
    for args in cases:
        result = platform.cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_unreachable_server_and_missing_token_fail_cleanly(platform: DevPlatform) -> None:
    down = run_cli("authority", "list", env={"TABARD_SERVER_URL": "http://127.0.0.1:9",
                                              "TABARD_ADMIN_TOKEN": "x"})
    assert down.returncode == 1 and "cannot reach the server" in down.stderr
    no_token = run_cli("authority", "list", env={"TABARD_SERVER_URL": platform.url,
                                                  "TABARD_ADMIN_TOKEN": ""})
    assert no_token.returncode == 1 and "admin token" in no_token.stderr


def test_json_output_for_scripts(platform: DevPlatform, tmp_path) -> None:
    listing = platform.cli("authority", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    kinds = {(r["kind"], r["state"]) for r in json.loads(listing.stdout)}
    assert {("x509", "active"), ("jwt", "active")} <= kinds
    minted = platform.cli("x509", "mint", "--spiffe-id", "spiffe://example.org/web",
                          "--out-dir", str(tmp_path), "--json")
    assert minted.returncode == 0, minted.stderr
    assert json.loads(minted.stdout)["spiffe_id"] == "spiffe://example.org/web"
    bundle = platform.cli("bundle", "show", "--format", "jwks")
    assert {k["use"] for k in json.loads(bundle.stdout)["keys"]} == {"x509-svid", "jwt-svid"}


def test_config_show_masks_secrets() -> None:
    result = run_cli("config", "show", "--json", env={
        "TABARD_DATABASE_URL": "postgresql://tabard:s3cr3t-pw@db.example/tabard",
        "TABARD_TRUST_DOMAIN": "corp.example", "TABARD_AUTHORITY__X509_SVID_TTL": "2h",
        "TABARD_KEK": "super-secret-kek"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "s3cr3t-pw" not in result.stdout and "super-secret-kek" not in result.stdout
    assert data["trust_domain"] == "corp.example"
    assert data["authority"]["x509_svid_ttl"] == "2h"
    table = run_cli("config", "show", env={"TABARD_TRUST_DOMAIN": "Bad_Domain"})
    assert table.returncode == 2 and "trust_domain" in table.stderr
