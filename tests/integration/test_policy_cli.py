"""Blended authorization as an admin drives it, against a running ``tabard dev``: the product
brief's example through ``tabard policy ...``, with the directory changed over SCIM.

One agent, ``assistant``. Engineer alice (group engineering) may call Jira and GitHub tools
but not the vulnerability scanner; security analyst bob (group security) the scanner but not
the deployment pipeline. Moving alice to the security group changes her decisions at once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.integration.test_agents_cli import Node, ok, refused
from tests.support.platform import DevPlatform

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy"
TOOLS = ["jira.create_issue", "jira.search", "github.create_pr", "github.read_file",
         "scanner.run_scan", "deploy.release"]
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def explain(platform: DevPlatform, agent: str, user: str, tool: str, *,
            context: dict[str, Any] | None = None, scope: str | None = None) -> Any:
    """``POST /api/v1/decisions`` (what ``tabard policy explain --json`` prints)."""
    with platform.http() as http:
        response = http.post("/api/v1/decisions", json={
            "agent": agent, "user": user, "action": "tools/call", "resource": f"Tool::{tool}",
            "context": context, "chain": [{"actor": agent, "scope": scope}] if scope else []})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_product_brief_example(platform: DevPlatform, tmp_path: Path) -> None:
    for user in ("carol", "alice", "bob"):
        ok(platform.cli("users", "create", user))
    token = ok(platform.cli("scim", "token", "create", "--name", "idp", "--json"))["token"]
    idp = httpx.Client(base_url=platform.url + "/scim/v2", timeout=30,
                       headers={"Authorization": f"Bearer {token}"})

    def user_id(name: str) -> str:
        found = idp.get("/Users", params={"filter": f'userName eq "{name}"'}).json()
        return str(found["Resources"][0]["id"])

    groups = {name: idp.post("/Groups", json={
        "schemas": [GROUP], "displayName": name, "members": [{"value": user_id(member)}]
    }).json()["id"] for name, member in (("engineering", "alice"), ("security", "bob"))}

    node = Node(platform, tmp_path)
    agent = ok(platform.cli(
        "agents", "register", "assistant", "--owner", "carol", "--purpose", "Helps engineers",
        "--tier", "dev", "--policy", "assistant-dev", *[a for t in TOOLS for a in ("--tool", t)],
        "--selector", "unix:uid:1000", "--model-provider", "anthropic", "--model-name",
        "claude", "--model-version", "4", "--hosting", "k8s/eu", "--image-digest",
        "sha256:" + "ab" * 32, "--node", node.node_id[:10], "--activate", "--json"))
    registered = node.register(agent["entry_id"], 4242)
    assert registered.status_code == 200, registered.text
    instance = registered.json()["spiffe_id"]

    # no policies yet: deny
    assert explain(platform, instance, "alice", "jira.search")["decision"] == "deny"
    assert "no policies" in ok(platform.cli("policy", "list"))

    applied = ok(platform.cli("policy", "apply", str(EXAMPLE / "policies"), "--json"))
    assert applied["changed"] and applied["epoch"]["epoch"] == 1
    assert applied["epoch"]["actor"] == "admin:dev"
    again = ok(platform.cli("policy", "apply", str(EXAMPLE / "policies")))
    assert "unchanged" in again and "policy epoch 1" in again

    jira = ok(platform.cli("policy", "explain", "--agent", instance, "--user", "alice",
                           "--action", "tools/call", "--resource", "Tool::jira.create_issue",
                           "--json"))
    assert (jira["decision"], jira["delegation"], jira["cached"]) == ("allow", "hybrid", False)
    assert jira["policies"] == {"agent": ["assistant-tools"], "user": ["engineers-jira-github"]}
    assert explain(platform, instance, "alice", "jira.create_issue")["cached"] is True
    assert explain(platform, instance, "alice", "github.create_pr")["decision"] == "allow"
    assert explain(platform, instance, "alice", "scanner.run_scan")["decision"] == "deny"
    scan = explain(platform, instance, "bob", "scanner.run_scan", context={"risk": 70})
    assert scan["decision"] == "allow"
    assert scan["obligations"] == ["redact", "require_approval"]
    deploy = explain(platform, instance, "bob", "deploy.release")
    assert deploy["decision"] == "deny"
    assert deploy["policies"]["user"] == ["deploy-needs-release-manager"]
    narrowed = explain(platform, instance, "alice", "github.create_pr", scope="tools:jira.*")
    assert narrowed["decision"] == "deny" and "outside the scope" in narrowed["reasons"][0]

    # the table a person reads
    table = ok(platform.cli("policy", "explain", "--agent", instance, "--user", "bob",
                            "--action", "tools/call", "--resource", "Tool::scanner.run_scan",
                            "--scope", "tools:scanner.*"))
    assert "ALLOW" in table and "redact" in table and "security-scanner" in table
    assert "inside the scope of all 1 delegation hop(s)" in table

    # alice moves from engineering to security: her very next decisions change
    for name, op in (("engineering", "remove"), ("security", "add")):
        patched = idp.patch(f"/Groups/{groups[name]}", json={"schemas": [PATCH], "Operations": [
            {"op": op, "path": f'members[value eq "{user_id("alice")}"]'} if op == "remove"
            else {"op": op, "path": "members", "value": [{"value": user_id("alice")}]}]})
        assert patched.status_code == 200, patched.text
    moved = explain(platform, instance, "alice", "jira.create_issue")
    assert (moved["decision"], moved["cached"]) == ("deny", False)
    assert explain(platform, instance, "alice", "scanner.run_scan")["decision"] == "allow"

    # policy test against the live server: the real instance and people
    cases = tmp_path / "live.yaml"
    cases.write_text(json.dumps({"cases": [
        {"name": "alice scans now", "agent": instance, "user": "alice", "action": "tools/call",
         "resource": "Tool::scanner.run_scan", "expect": "allow", "obligations": ["redact"]},
        {"name": "alice still files issues", "agent": instance, "user": "alice",
         "action": "tools/call", "resource": "Tool::jira.create_issue", "expect": "allow"},
    ]}))
    live = platform.cli("policy", "test", str(cases), "--live")
    assert live.returncode == 1, live.stdout + live.stderr
    assert "1 passed, 1 failed" in live.stdout and "FAIL alice still files issues" in live.stdout

    # a bundle the schema refuses is refused with the file's name, by the server too
    with platform.http() as http:
        bad = http.put("/api/v1/policies", json={"files": {
            "x.cedar": "permit(principal, action, resource) when { resource.colour };"}})
        assert bad.status_code == 400 and bad.headers["content-type"] == (
            "application/problem+json")
        assert bad.json()["code"] == "invalid_policy"
        assert "x.cedar: policy 'x.cedar#1'" in bad.json()["detail"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.cedar").write_text("permit(principal, action, resource) when {")
    refused(platform.cli("policy", "apply", str(tmp_path / "bad")), 2, "x.cedar: ")

    shrunk = tmp_path / "shrunk"
    shrunk.mkdir()
    for file in ("catalog.yaml", "agents.cedar"):
        (shrunk / file).write_text((EXAMPLE / "policies" / file).read_text())
    ok(platform.cli("policy", "apply", str(shrunk)))
    conflict: subprocess.CompletedProcess[str] = platform.cli(
        "policy", "apply", str(EXAMPLE / "policies"), "--expected-epoch", "1")
    refused(conflict, 1, "epoch 2, not 1")
    history = ok(platform.cli("policy", "history", "--json"))
    assert [(e["epoch"], e["files"]) for e in history] == [
        (2, ["agents.cedar", "catalog.yaml"]),
        (1, ["agents.cedar", "catalog.yaml", "people.cedar"])]
    assert explain(platform, instance, "bob", "scanner.run_scan")["policy_epoch"] == 2
