"""Secrets and leases through REST and the CLI, in-process (SQLite): values go in, never
come out; leases list and revoke by agent and instance."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tabard.app import ControlPlane, build_control_plane
from tabard.cli import client as cli_client
from tabard.cli import output as cli_output
from tabard.cli.main import main
from tabard.clock import FakeClock
from tabard.config import Settings
from tabard.server import create_app
from tabard.vault import CredentialContext, StaticSecretProvider

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
VALUE = "ghp_" + "Q" * 36
INSTANCE = "spiffe://example.org/agent/assistant/instance/01HZZZZZZZZZZZZZZZZZZZZZZZ"


@dataclass
class Env:
    plane: ControlPlane
    clock: FakeClock
    admin: TestClient


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.delenv("TABARD_KEK", raising=False)
    clock = FakeClock(T0)
    plane = build_control_plane(Settings(trust_domain="example.org", data_dir=tmp_path / "d"),
                                clock=clock)
    token = plane.admin_tokens.create("test").token
    admin = TestClient(create_app(plane.server_services()),
                       headers={"Authorization": f"Bearer {token}"})
    # the CLI's admin client talks to the same app in-process
    monkeypatch.setenv("TABARD_ADMIN_TOKEN", token)
    monkeypatch.setattr(cli_output.console, "width", 250)
    monkeypatch.setattr(cli_client.httpx, "Client",
                        lambda base_url, timeout: TestClient(admin.app, base_url=base_url))
    try:
        yield Env(plane, clock, admin)
    finally:
        plane.close()


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_rest_create_show_rotate_delete_never_returns_the_value(env: Env) -> None:
    created = env.admin.post("/api/v1/secrets", json={
        "name": "github-token", "value_base64": b64(VALUE), "description": "CI bot"})
    assert created.status_code == 201, created.text
    assert created.json()["current_version"] == 1
    env.clock.advance(60)
    rotated = env.admin.post("/api/v1/secrets/github-token/rotate",
                             json={"value_base64": b64(VALUE + "2")})
    assert rotated.json()["current_version"] == 2 and rotated.json()["description"] == "CI bot"
    shown = env.admin.get("/api/v1/secrets/github-token").json()
    assert [(v["version"], v["state"]) for v in shown["versions"]] == [
        (2, "current"), (1, "previous")]
    assert shown["versions"][1]["expires_at"].startswith("2026-03-02T09:01")
    listed = env.admin.get("/api/v1/secrets")
    for response in (created, rotated, listed, env.admin.get("/api/v1/secrets/github-token")):
        assert VALUE not in response.text and b64(VALUE)[:20] not in response.text
    assert env.plane.vault.secrets.reveal("github-token").text() == VALUE + "2"
    duplicate = env.admin.post("/api/v1/secrets", json={"name": "github-token",
                                                        "value_base64": b64("x")})
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "secret_exists"
    bad = env.admin.post("/api/v1/secrets", json={"name": "n", "value_base64": "not base64!"})
    assert bad.status_code == 400 and "not base64" not in bad.text.replace(
        "not valid base64", "")
    assert env.admin.post("/api/v1/secrets", json={
        "name": "bad/name", "value_base64": b64("x")}).json()["code"] == "invalid_secret_name"
    assert env.admin.delete("/api/v1/secrets/github-token").status_code == 204
    gone = env.admin.get("/api/v1/secrets/github-token")
    assert gone.status_code == 404 and gone.json()["code"] == "secret_not_found"
    assert TestClient(env.admin.app).get("/api/v1/secrets").status_code == 401


def test_rest_leases_list_and_revoke(env: Env) -> None:
    env.plane.vault.secrets.put("jira", b"jira-value")
    provider = StaticSecretProvider(env.plane.vault.secrets, env.plane.vault.leases,
                                    env.clock, secret="jira")
    issued = []
    for i in range(3):
        env.clock.advance(1)
        issued.append(provider.issue(CredentialContext(
            route="demo-tools", upstream="https://jira.example", agent="assistant",
            agent_instance=f"{INSTANCE[:-1]}{i}", user="alice")))
    leases = env.admin.get("/api/v1/leases", params={"agent": "assistant"}).json()
    assert [x["id"] for x in leases] == [c.lease_id for c in reversed(issued)]
    assert leases[0]["secret_name"] == "jira" and leases[0]["active"] is True
    assert "jira-value" not in json.dumps(leases)
    one = env.admin.post(f"/api/v1/leases/{issued[0].lease_id}/revoke").json()
    assert one["active"] is False and one["revoked_at"] is not None
    by_instance = env.admin.post("/api/v1/leases/revoke",
                                 json={"agent_instance": f"{INSTANCE[:-1]}1"}).json()
    assert by_instance == {"revoked": 1}
    assert env.admin.post("/api/v1/leases/revoke", json={"agent": "assistant"}).json() == {
        "revoked": 1}
    assert env.admin.get("/api/v1/leases", params={"active": "true"}).json() == []
    assert env.admin.post("/api/v1/leases/revoke", json={}).status_code == 400
    assert env.admin.get("/api/v1/leases/nope").json()["code"] == "lease_not_found"


def test_cli_put_list_show_rotate_leases_delete(
        env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(VALUE + "\n")
    code, out, _ = cli(capsys, "secrets", "put", "github-token", "--from-file",
                       str(secret_file), "--description", "CI bot")
    assert code == 0 and "stored secret github-token (version 1)" in out
    assert env.plane.vault.secrets.reveal("github-token").text() == VALUE  # newline dropped

    class Stdin:
        buffer = __import__("io").BytesIO((VALUE + "-2").encode())

    monkeypatch.setattr("sys.stdin", Stdin)
    code, out, _ = cli(capsys, "secrets", "rotate", "github-token", "--stdin", "--json")
    assert code == 0 and json.loads(out)["current_version"] == 2
    code, out, _ = cli(capsys, "secrets", "list")
    assert code == 0 and "github-token" in out and "CI bot" in out
    code, out, _ = cli(capsys, "secrets", "show", "github-token")
    assert code == 0 and "previous" in out and "current" in out
    code, out, err = cli(capsys, "secrets", "put", "other")
    assert code == 2 and "exactly one of --from-file FILE and --stdin" in err
    provider = StaticSecretProvider(env.plane.vault.secrets, env.plane.vault.leases,
                                    env.clock, secret="github-token")
    lease = provider.issue(CredentialContext(route="gh", upstream="https://gh.example",
                                             agent="assistant", agent_instance=INSTANCE,
                                             user="alice")).lease_id
    code, out, _ = cli(capsys, "secrets", "leases", "--agent", "assistant")
    assert code == 0 and lease in out and "github-token v2" in out and "active" in out
    code, out, _ = cli(capsys, "secrets", "revoke-leases", "--agent", "assistant")
    assert code == 0 and "revoked 1 lease(s)" in out
    code, out, _ = cli(capsys, "secrets", "leases", "--json")
    assert json.loads(out)[0]["revoked_at"] is not None
    code, out, _ = cli(capsys, "secrets", "delete", "github-token")
    assert code == 0 and "deleted secret github-token" in out
    code, _, err = cli(capsys, "secrets", "rotate", "github-token", "--from-file",
                       str(secret_file))
    assert code == 1 and "no secret 'github-token'" in err
    env.clock.advance(timedelta(days=2))
    everything = capsys.readouterr()
    assert VALUE not in everything.out + everything.err
