"""Routes and approvals through REST and the CLI, in-process (SQLite): problems for bad
input, configured routes read-only, four eyes and the approver role, decisions in the
audit log."""

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
from tabard.audit import AuditKind
from tabard.cli import client as cli_client
from tabard.cli import output as cli_output
from tabard.cli.main import main
from tabard.clock import FakeClock
from tabard.config import GatewaySettings, Settings
from tabard.server import create_app

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Env:
    plane: ControlPlane
    clock: FakeClock
    admin: TestClient


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.delenv("TABARD_KEK", raising=False)
    clock = FakeClock(T0)
    gateway = GatewaySettings(routes=[{"name": "static-docs", "protocol": "http",
                                       "upstream": "http://127.0.0.1:9/docs"}])
    plane = build_control_plane(Settings(trust_domain="example.org", data_dir=tmp_path / "d",
                                         gateway=gateway), clock=clock)
    people = plane.directory.people
    people.add_user("alice", roles=["approver"])  # an approver, but not of her own calls
    people.add_user("bob", roles=["approver"])
    people.add_user("eve")
    token = plane.admin_tokens.create("test").token
    admin = TestClient(create_app(plane.server_services()),
                       headers={"Authorization": f"Bearer {token}"})
    monkeypatch.setenv("TABARD_ADMIN_TOKEN", token)
    monkeypatch.setattr(cli_output.console, "width", 250)
    monkeypatch.setattr(cli_client.httpx, "Client",
                        lambda base_url, timeout: TestClient(admin.app, base_url=base_url))
    try:
        yield Env(plane, clock, admin)
    finally:
        plane.close()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_routes_rest(env: Env) -> None:
    assert env.admin.get("/api/v1/routes", headers={"Authorization": "Bearer x"}
                         ).status_code == 401
    missing_secret = env.admin.post("/api/v1/routes", json={
        "name": "jira", "protocol": "mcp", "upstream": "https://jira.example/mcp",
        "credential": {"kind": "static", "secret": "jira-token"}})
    assert missing_secret.status_code == 400
    assert missing_secret.headers["content-type"] == "application/problem+json"
    assert missing_secret.json()["code"] == "invalid_route"
    env.admin.post("/api/v1/secrets", json={"name": "jira-token",
                                            "value_base64": base64.b64encode(b"v").decode()})
    created = env.admin.post("/api/v1/routes", json={
        "name": "jira", "protocol": "mcp", "upstream": "https://jira.example/mcp",
        "credential": {"kind": "static", "secret": "jira-token"}, "dlp_profile": "default"})
    assert created.status_code == 201, created.text
    assert created.json()["credential"]["secret"] == "jira-token"
    assert env.admin.post("/api/v1/routes", json={
        "name": "jira", "protocol": "mcp", "upstream": "https://x.example"}).status_code == 409
    bad_profile = env.admin.post("/api/v1/routes", json={
        "name": "x", "protocol": "mcp", "upstream": "https://x.example", "dlp_profile": "no"})
    assert bad_profile.status_code == 400
    put = env.admin.put("/api/v1/routes/jira", json={
        "protocol": "http", "upstream": "https://jira.example/rest", "timeout": 5})
    assert put.status_code == 200 and put.json()["credential"]["kind"] == "none"
    assert [r["name"] for r in env.admin.get("/api/v1/routes").json()] == ["jira",
                                                                          "static-docs"]
    assert env.admin.delete("/api/v1/routes/static-docs").status_code == 409
    assert env.admin.delete("/api/v1/routes/jira").status_code == 204
    assert env.admin.get("/api/v1/routes/jira").json()["code"] == "route_not_found"
    assert env.plane.routes is not None and env.plane.routes.version() == 3


def test_routes_cli(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "routes", "create", "tools", "--protocol", "mcp",
                         "--upstream", "http://127.0.0.1:7001/mcp", "--credential",
                         "downstream_jwt", "--scope", "tools:*=read", "--strip-header",
                         "X-Api-Key", "--dlp-profile", "secrets", "--dlp-action", "block")
    assert code == 0, err
    assert "created route tools (mcp → http://127.0.0.1:7001/mcp)" in out
    code, out, _ = cli(capsys, "routes", "list")
    assert "tools" in out and "downstream_jwt" in out and "secrets/block" in out
    code, out, _ = cli(capsys, "routes", "show", "tools", "--json")
    shown = json.loads(out)
    assert shown["credential"]["scopes"] == {"tools:*": "read"}
    assert shown["strip_headers"] == ["X-Api-Key"]
    code, _, err = cli(capsys, "routes", "create", "bad", "--protocol", "mcp", "--upstream",
                       "http://u:p@127.0.0.1/")
    assert code == 2 and err.startswith("error: ") and "credentials" in err
    code, _, err = cli(capsys, "routes", "create", "bad", "--protocol", "mcp", "--upstream",
                       "http://127.0.0.1/", "--scope", "noequals")
    assert code == 2 and "GLOB=UPSTREAM_SCOPE" in err
    code, out, _ = cli(capsys, "routes", "delete", "tools")
    assert code == 0 and "deleted route tools" in out
    code, out, err = cli(capsys, "routes", "create", "helper", "--protocol", "a2a",
                         "--upstream", "http://127.0.0.1:7002/a2a", "--user-token-issuer",
                         "https://idp.example", "--push-url", "https://hooks.example/a2a/")
    assert code == 0, err
    code, out, _ = cli(capsys, "routes", "show", "helper")
    assert "user token issuers" in out and "https://idp.example" in out
    assert "https://hooks.example/a2a/" in out
    shown = env.admin.get("/api/v1/routes/helper").json()
    assert shown["user_token_issuers"] == ["https://idp.example"]
    assert shown["push_urls"] == ["https://hooks.example/a2a/"]
    code, _, err = cli(capsys, "routes", "create", "bad", "--protocol", "a2a", "--upstream",
                       "http://127.0.0.1/", "--push-url", "http://hooks.example/")
    assert code == 2 and "https://" in err
    code, out, _ = cli(capsys, "routes", "--help")
    assert code == 0 and "create" in out


def test_approvals_rest_cli_and_audit(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.plane.approvals is not None
    held = env.plane.approvals.request(
        agent="assistant", instance="spiffe://example.org/agent/assistant/instance/1",
        user="alice", action="tools/call", resource="Tool::deploy.trigger",
        route="demo-tools", reason="approval required above risk 50",
        timeout=timedelta(minutes=2))
    code, out, _ = cli(capsys, "approvals", "list", "--state", "pending")
    assert code == 0 and held.id in out and "alice" in out
    own = env.admin.post(f"/api/v1/approvals/{held.id}/approve", json={"approver": "alice"})
    assert own.status_code == 403 and own.json()["code"] == "four_eyes"
    code, _, err = cli(capsys, "approvals", "approve", held.id, "--approver", "eve")
    assert code != 0 and "approver" in err
    code, out, err = cli(capsys, "approvals", "approve", held.id, "--approver", "bob",
                         "--reason", "release window")
    assert code == 0, err
    assert f"approval {held.id} approved by bob" in out
    again = env.admin.post(f"/api/v1/approvals/{held.id}/deny", json={"approver": "bob"})
    assert again.status_code == 409 and again.json()["code"] == "approval_not_pending"
    assert env.admin.get(f"/api/v1/approvals/{held.id}").json()["decided_by"] == "bob"

    late = env.plane.approvals.request(
        agent="assistant", instance="i", user="alice", action="tools/call",
        resource="Tool::deploy.trigger", route="demo-tools", reason="",
        timeout=timedelta(seconds=30))
    env.clock.advance(timedelta(seconds=31))
    assert env.admin.get("/api/v1/approvals?state=expired").json()[0]["id"] == late.id
    code, out, _ = cli(capsys, "approvals", "deny", late.id, "--approver", "bob", "--json")
    assert code == 1
    assert env.admin.get("/api/v1/approvals?state=bogus").status_code in (400, 422)

    assert env.plane.audit is not None
    records = [r.body() for r in env.plane.audit.records(kind=AuditKind.APPROVAL.value)]
    ops = [(r["what"]["operation"], r["outcome"]) for r in records]
    assert ops == [("approval.request", "pending"), ("approval.approved", "success"),
                   ("approval.request", "pending")]
    assert records[1]["actor"] == "bob"
    assert records[1]["details"]["decision_reason"] == "release window"
