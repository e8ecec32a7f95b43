"""``tabard secrets`` against a running ``tabard dev``: a planted value is found nowhere —
not in the CLI's output, the server log, the database file (with its WAL) or anything else
under the data directory — while the vault still hands it to a provider."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from tests.support.platform import DevPlatform


def test_a_planted_value_never_leaves_the_vault(tmp_path: Path) -> None:
    planted = "sk-ant-api03-" + secrets.token_urlsafe(40)
    rotated = "sk-ant-api03-" + secrets.token_urlsafe(40)
    value_file, next_file = tmp_path / "value.txt", tmp_path / "next.txt"
    value_file.write_text(planted + "\n")
    next_file.write_text(rotated)
    data = tmp_path / "dev"
    outputs: list[str] = []
    with DevPlatform(data, extra_env={"TABARD_LOG_LEVEL": "debug"}) as p:
        put = p.cli("secrets", "put", "anthropic", "--from-file", str(value_file),
                    "--description", "model provider key")
        assert put.returncode == 0, put.stderr
        assert "stored secret anthropic (version 1)" in put.stdout
        listed = p.cli("secrets", "list", "--json")
        assert [s["name"] for s in json.loads(listed.stdout)] == ["anthropic"]
        rotate = p.cli("secrets", "rotate", "anthropic", "--from-file", str(next_file))
        assert rotate.returncode == 0 and "version 2" in rotate.stdout
        shown = p.cli("secrets", "show", "anthropic", "--json")
        assert [v["state"] for v in json.loads(shown.stdout)["versions"]] == [
            "current", "previous"]
        leases = p.cli("secrets", "leases", "--agent", "nobody")
        assert leases.returncode == 0
        missing = p.cli("secrets", "delete", "unknown")
        assert missing.returncode == 1 and "no secret 'unknown'" in missing.stderr
        outputs += [r.stdout + r.stderr for r in (put, listed, rotate, shown, leases, missing)]
        # the value is still there for providers, in-process, over the same files
        from tabard.authority import load_kek
        from tabard.clock import SystemClock
        from tabard.store import Database, SqlSecretStore
        from tabard.vault import EnvelopeCipher, Vault
        db = Database(f"sqlite:///{data / 'tabard.db'}")
        vault = Vault(SqlSecretStore(db), EnvelopeCipher(load_kek(None, data / "kek",
                                                                  create=False)), SystemClock())
        assert vault.reveal("anthropic").text() == rotated
        assert vault.reveal("anthropic", 1).text() == planted
        db.dispose()
    logs = p.logs() + p.output()
    assert "secret rotated" in logs  # the vault does log, only never the value
    files = [f for f in data.rglob("*") if f.is_file()]
    assert any(f.name == "tabard.db" for f in files)
    for value in (planted, rotated):
        assert value not in logs and all(value not in o for o in outputs)
        for f in files:
            assert value.encode() not in f.read_bytes(), f
