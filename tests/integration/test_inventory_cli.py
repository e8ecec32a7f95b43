"""NHI inventory as an admin uses it: ``tabard inventory import|list`` against ``tabard dev``."""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.platform import DevPlatform, run_cli

NOW = datetime.now(UTC)
RECENT = (NOW - timedelta(days=1)).date().isoformat()
NEXT_MONTH = (NOW + timedelta(days=30)).date().isoformat()

# 3 good rows, 2 bad ones (lines 3 and 5), and a blank line that is skipped
MIXED_CSV = (
    "kind,name,source,external_id,owner,created_at,last_used_at,expires_at,privileges,notes\n"
    f"api_key,ci-deploy,github,key-1,alice,{RECENT},{RECENT},{NEXT_MONTH},repo:write;pkg:read,ci\n"
    "api_key,bad-date,github,key-2,bob,last tuesday,,,,\n"
    f"service_account,billing,aws-iam,arn:aws:iam::1:user/billing,,{RECENT},,,s3:Get,\n"
    "robot,weird,github,x,,,,,,\n"
    "\n"
    f"certificate,web-tls,manual,cert-1,dave,{RECENT},{RECENT},{NEXT_MONTH},,\n"
)


@pytest.mark.parametrize("command", [["inventory", "import"], ["inventory", "list"]],
                         ids=" ".join)
def test_inventory_commands_have_help_with_an_example(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def ok_json(result: Any) -> Any:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_import_keeps_good_rows_reports_bad_ones_and_exits_1(
        backend_platform: DevPlatform, tmp_path: Path) -> None:
    path = write(tmp_path / "nhis.csv", MIXED_CSV)
    result = backend_platform.cli("inventory", "import", str(path))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "2 rows not imported" in result.stdout
    lines = result.stdout.splitlines()
    assert any("│ 3 " in line and "created_at" in line for line in lines), result.stdout
    assert any("│ 5 " in line and "kind" in line for line in lines), result.stdout
    assert "imported 3 of 5 rows from nhis.csv (3 new, 0 updated); 2 failed" in result.stdout

    listed = ok_json(backend_platform.cli("inventory", "list", "--json"))
    assert sorted((r["source"], r["external_id"]) for r in listed) == [
        ("aws-iam", "arn:aws:iam::1:user/billing"), ("github", "key-1"), ("manual", "cert-1")]
    ci = next(r for r in listed if r["name"] == "ci-deploy")
    assert ci["privileges"] == ["repo:write", "pkg:read"] and ci["owner"] == "alice"
    assert ci["flags"] == []
    billing = next(r for r in listed if r["name"] == "billing")
    assert billing["owner"] is None and billing["flags"] == ["no_owner", "long_lived"]

    again = backend_platform.cli("inventory", "import", str(path), "--json")
    assert again.returncode == 1
    report = json.loads(again.stdout)
    assert (report["rows"], report["imported"], report["created"], report["updated"],
            report["failed"], report["skipped"]) == (5, 3, 0, 3, 2, 0)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "created_at"),
                                                                 (5, "kind")]
    assert len(ok_json(backend_platform.cli("inventory", "list", "--json"))) == 3


def test_list_by_flag_kind_and_owner(platform: DevPlatform, tmp_path: Path) -> None:
    old = (NOW - timedelta(days=200)).date().isoformat()
    rows = [
        {"kind": "api_key", "name": "orphan-key", "source": "flags", "expires": NEXT_MONTH,
         "last_used": RECENT, "created": RECENT},
        {"kind": "oauth_client", "name": "orphan-app", "source": "flags", "created": old},
        {"kind": "api_key", "name": "owned-key", "source": "flags", "owner": "erin",
         "expires": NEXT_MONTH, "last_used": RECENT, "created": RECENT},
        {"kind": "certificate", "name": "old-cert", "source": "flags", "owner": "erin",
         "created": old, "expires": RECENT},
    ]
    path = write(tmp_path / "flags.json", json.dumps(rows))
    assert ok_json(platform.cli("inventory", "import", str(path), "--json"))["imported"] == 4

    orphans = ok_json(platform.cli("inventory", "list", "--source", "flags", "--flag",
                                   "no_owner", "--json"))
    assert [r["name"] for r in orphans] == ["orphan-key", "orphan-app"]
    assert orphans[1]["flags"] == ["no_owner", "long_lived", "unused_30d"]

    table = platform.cli("inventory", "list", "--source", "flags", "--flag", "no_owner")
    assert table.returncode == 0, table.stderr
    assert "orphan-key" in table.stdout and "orphan-app" in table.stdout
    assert "owned-key" not in table.stdout and "no_owner" in table.stdout

    both = ok_json(platform.cli("inventory", "list", "--source", "flags", "--flag", "no_owner",
                                "--flag", "unused_30d", "--json"))
    assert [r["name"] for r in both] == ["orphan-app"]
    expired = ok_json(platform.cli("inventory", "list", "--flag", "expired", "--json"))
    assert [r["name"] for r in expired] == ["old-cert"]
    keys = ok_json(platform.cli("inventory", "list", "--source", "flags", "--kind", "api_key",
                                "--owner", "erin", "--json"))
    assert [r["name"] for r in keys] == ["owned-key"]

    bad = platform.cli("inventory", "list", "--flag", "stale")
    assert bad.returncode == 2 and "unknown posture flag 'stale'" in bad.stderr


def test_json_import_numbers_rows_by_position_and_applies_source(
        platform: DevPlatform, tmp_path: Path) -> None:
    rows: list[object] = [
        {"kind": "api_key", "name": "a", "owner": "fred"},
        {"kind": "api_key"},
        "text",
        {"kind": "api_key", "name": "b", "source": "vault", "colour": "blue"},
        {},
    ]
    path = write(tmp_path / "rows.json", json.dumps(rows))
    result = platform.cli("inventory", "import", str(path), "--source", "Json-Test", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(2, "name"), (3, "")]
    assert (report["imported"], report["skipped"], report["ignored_fields"]) == (
        2, 1, ["colour"])
    listed = ok_json(platform.cli("inventory", "list", "--owner", "fred", "--json"))
    assert [(r["source"], r["external_id"]) for r in listed] == [("json-test", "a")]
    assert ok_json(platform.cli("inventory", "list", "--source", "vault", "--json"))[0][
        "name"] == "b"

    clean = write(tmp_path / "clean.json", json.dumps([{"kind": "other", "name": "ok"}]))
    result = platform.cli("inventory", "import", str(clean), "--source", "json-test")
    assert result.returncode == 0, result.stderr
    assert "imported 1 of 1 rows" in result.stdout


def test_an_unreadable_file_exits_2_and_imports_nothing(platform: DevPlatform,
                                                        tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.json",
                   '[{"kind": "api_key", "name": "never", "source": "broken"}, {"kind": ')
    result = platform.cli("inventory", "import", str(broken))
    assert result.returncode == 2
    assert "row 2 is not valid JSON" in result.stderr
    assert ok_json(platform.cli("inventory", "list", "--source", "broken", "--json")) == []

    missing = platform.cli("inventory", "import", str(tmp_path / "missing.csv"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unknown = platform.cli("inventory", "import", str(write(tmp_path / "x.txt", "kind\n")))
    assert unknown.returncode == 2 and "--format" in unknown.stderr
    bad_source = platform.cli("inventory", "import", str(broken), "--source", "not ok")
    assert bad_source.returncode == 2 and "source" in bad_source.stderr


def test_import_rest_api_limits_and_auth(platform: DevPlatform) -> None:
    with platform.http() as http:
        too_many = http.post("/api/v1/inventory/import",
                             json=[{"kind": "other", "name": f"n{i}"} for i in range(1001)])
        assert too_many.status_code == 400
        assert too_many.headers["content-type"] == "application/problem+json"
        assert http.post("/api/v1/inventory/import", json={"kind": "other"}).status_code == 400
        bad_source = http.post("/api/v1/inventory/import?source=NOT%20OK", json=[])
        assert bad_source.status_code == 400 and bad_source.json()["code"] == "invalid_nhi"
        report = http.post("/api/v1/inventory/import?source=rest",
                           json=[{"kind": "other", "name": "r1"}, 5]).json()
        assert report["errors"] == [{"row": 2, "field": "",
                                     "message": "a row must be a JSON object"}]
        listed = http.get("/api/v1/inventory", params={"source": "rest"}).json()
        assert http.get(f"/api/v1/inventory/{listed[0]['id']}").json()["name"] == "r1"
        assert http.get("/api/v1/inventory/" + "0" * 26).status_code == 404
        assert http.get("/api/v1/inventory", params={"flag": "x"}).status_code == 400
        assert http.get("/api/v1/inventory", params={"kind": "robot"}).status_code == 400
    with platform.http() as http:
        http.headers.pop("Authorization")
        assert http.get("/api/v1/inventory").status_code == 401
        assert http.post("/api/v1/inventory/import", json=[]).status_code == 401


def test_ten_thousand_rows_import_in_a_few_seconds(backend_platform: DevPlatform,
                                                  tmp_path: Path) -> None:
    platform = backend_platform
    path = tmp_path / "big.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "name", "source", "external_id", "owner", "created_at",
                         "last_used_at", "expires_at", "privileges", "notes"])
        for i in range(10_000):
            writer.writerow(["service_account", f"svc-{i}", "bulk", f"arn:aws:iam::1:user/svc-{i}",
                             "" if i % 7 else "ops", "2025-01-01T00:00:00Z",
                             "2026-01-01T00:00:00Z", "", "s3:GetObject;s3:PutObject",
                             "imported by the bulk test"])
    start = time.perf_counter()
    result = platform.cli("inventory", "import", str(path), "--json")
    elapsed = time.perf_counter() - start
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert (report["rows"], report["imported"], report["created"]) == (10_000, 10_000, 10_000)
    print(f"\n10k-row CSV import through the CLI: {elapsed:.2f}s")
    again = time.perf_counter()
    report = ok_json(platform.cli("inventory", "import", str(path), "--json"))
    assert (report["created"], report["updated"]) == (0, 10_000)
    print(f"10k-row CSV re-import (all updates): {time.perf_counter() - again:.2f}s")
    assert elapsed < 30, f"importing 10k rows took {elapsed:.1f}s"
    listed = ok_json(platform.cli("inventory", "list", "--source", "bulk", "--owner", "ops",
                                  "--limit", "10000", "--json"))
    assert len(listed) == len(range(0, 10_000, 7))
