"""Agents as an admin drives them: ``tabard agents ...`` against ``tabard dev`` on SQLite and
PostgreSQL, a node over real mTLS asking for the agent's identities, and a retirement that
survives ``kill -9`` of the server between its steps."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import CertificateSigningRequestBuilder, Name, NameAttribute
from cryptography.x509.oid import NameOID

from tabard.spiffe import Bundle, TrustDomain
from tests.support.platform import DevPlatform, run_cli

TD = "example.org"
DIGEST = "sha256:" + "ab" * 32
COMMANDS = ["register", "list", "show", "update", "promote", "recertify", "activate",
            "suspend", "narrow", "resume", "transfer", "attest", "retire", "events", "residual",
            "orphans"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_agents_command_has_help_with_an_example(command: str) -> None:
    result = run_cli("agents", command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    text = result.stdout.lstrip()
    return json.loads(text) if text.startswith(("{", "[")) else text


def refused(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.args, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines


def register(platform: DevPlatform, name: str, *extra: str) -> Any:
    return ok(platform.cli(
        "agents", "register", name, "--owner", "carol", "--purpose", "Places trades",
        "--tier", "dev", "--policy", f"{name}-dev", "--tool", "quotes.read",
        "--tool", "orders.place", "--selector", "unix:uid:1000", "--model-provider",
        "anthropic", "--model-name", "claude", "--model-version", "4", "--hosting", "k8s/eu",
        "--image-digest", DIGEST, *extra, "--json"))


# --- a node of our own, over mTLS -------------------------------------------------------------


class Node:
    """A node attested with a join token, calling the node API with its X509-SVID."""

    def __init__(self, platform: DevPlatform, tmp_path: Path) -> None:
        self.api = platform.ready["node_api_url"]
        bundle = Bundle.parse(TrustDomain(TD), httpx.get(f"{platform.url}/bundle").text)
        self.bundle_pem = bundle.x509_pem()
        token = ok(platform.cli("token", "generate", "--ttl", "5m", "--json"))["token"]
        key = ec.generate_private_key(ec.SECP256R1())
        with httpx.Client(verify=self._tls(), timeout=30) as anonymous:
            attested = anonymous.post(f"{self.api}/node/v1/attest", json={
                "attestor": "join_token", "join_token": token, "csr": csr(key)})
        assert attested.status_code == 200, attested.text
        self.node_id = attested.json()["node_id"]
        self.cert, self.key = tmp_path / "node.pem", tmp_path / "node.key"
        self.cert.write_text(attested.json()["svid_pem"])
        self.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.http = httpx.Client(verify=self._tls(mutual=True), timeout=30)

    def _tls(self, mutual: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.bundle_pem)
        context.check_hostname = False  # the node checks the server's SPIFFE ID instead
        if mutual:
            context.load_cert_chain(self.cert, self.key)
        return context

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"{self.api}/node/v1/{path}", json=body)

    def register(self, entry_id: str, pid: int) -> httpx.Response:
        return self.post("instances", {
            "entry_id": entry_id, "pid": pid, "start_time": 1.5, "uid": 1000, "gid": 1000,
            "exe_path": "/usr/bin/trader", "exe_sha256": "cd" * 32,
            "selectors": ["unix:uid:1000", "unix:gid:1000"], "parent_instance_id": None})

    def x509(self, entry_id: str, instance_id: str) -> httpx.Response:
        return self.post("svids/x509", {"requests": [
            {"entry_id": entry_id, "instance_id": instance_id, "csr": csr()}]})

    def jwt(self, entry_id: str, instance_id: str) -> httpx.Response:
        return self.post("svids/jwt", {"entry_id": entry_id, "instance_id": instance_id,
                                       "audience": ["orders"]})


def csr(key: ec.EllipticCurvePrivateKey | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    request = (CertificateSigningRequestBuilder()
               .subject_name(Name([NameAttribute(NameOID.COMMON_NAME, "x")]))
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_agent_lifecycle_end_to_end(backend_platform: DevPlatform, tmp_path: Path) -> None:
    platform = backend_platform
    for user, role in (("carol", None), ("alice", "approver"), ("bob", "approver")):
        ok(platform.cli("users", "create", user, *(("--role", role) if role else ())))
    node = Node(platform, tmp_path)

    agent = register(platform, "trading", "--node", node.node_id[:10], "--activate",
                     "--config", '{"temperature": 0.2}')
    assert (agent["state"], agent["owner"], agent["tier"]) == ("active", "carol", "dev")
    assert agent["spiffe_id_template"] == f"spiffe://{TD}/agent/trading/instance/{{instance}}"
    entry_id = agent["entry_id"]

    # the instance gets an SVID
    registered = node.register(entry_id, 4242)
    assert registered.status_code == 200, registered.text
    instance = registered.json()
    minted = node.x509(entry_id, instance["instance_id"])
    assert minted.status_code == 200 and len(minted.json()["svids"]) == 1
    assert minted.json()["svids"][0]["spiffe_id"] == instance["spiffe_id"]

    # add a tool: pending; the old grants keep working
    update = ok(platform.cli("agents", "update", "trading", "--add-tool", "orders.cancel",
                             "--requested-by", "alice", "--reason", "cancel stale", "--json"))
    assert [c["payload"] for c in update["pending"]] == [{"tool": "orders.cancel"}]
    shown = ok(platform.cli("agents", "show", "trading", "--json"))
    assert shown["state"] == "pending_recertification"
    assert "orders.cancel" not in shown["effective_tools"]
    assert "orders.cancel" in shown["declared_tools"]
    assert [i["id"] for i in shown["instances"]] == [instance["instance_id"]]
    assert len(node.x509(entry_id, instance["instance_id"]).json()["svids"]) == 1
    human = platform.cli("agents", "show", "trading", env={"COLUMNS": "200"})
    assert "pending: orders.cancel" in human.stdout and "Pending recertification" in human.stdout

    refused(platform.cli("agents", "recertify", "trading", "--approver", "alice"), 1,
            "cannot also approve it")
    refused(platform.cli("agents", "recertify", "trading", "--approver", "carol"), 1,
            "approver")
    decided = ok(platform.cli("agents", "recertify", "trading", "--approver", "bob", "--json"))
    assert [(c["status"], c["decided_by"]) for c in decided] == [("approved", "bob")]
    shown = ok(platform.cli("agents", "show", "trading", "--json"))
    assert shown["state"] == "active" and "orders.cancel" in shown["effective_tools"]
    assert shown["checksum"] != agent["checksum"]

    # promotion needs a binding for the new tier
    refused(platform.cli("agents", "promote", "trading", "--tier", "prod"), 2,
            "no policy binding for tier prod")
    promoted = ok(platform.cli("agents", "promote", "trading", "--tier", "prod", "--policy",
                               "trading-prod", "--requested-by", "carol", "--json"))
    assert promoted["agent"]["tier"] == "dev" and promoted["pending"][0]["kind"] == (
        "tier_promote")
    ok(platform.cli("agents", "recertify", "trading", "--approver", "alice"))
    assert ok(platform.cli("agents", "show", "trading", "--json"))["tier"] == "prod"

    # suspension: no SVIDs; resume
    ok(platform.cli("agents", "suspend", "trading", "--reason", "incident 7"))
    # the kill switch refuses the suspended agent's identities outright (kill-switch.md)
    for denied in (node.x509(entry_id, instance["instance_id"]),
                   node.jwt(entry_id, instance["instance_id"])):
        assert denied.status_code == 403 and denied.json()["code"] == "suspended"
    refused(platform.cli("agents", "suspend", "trading"), 1, "cannot suspend")
    ok(platform.cli("agents", "resume", "trading"))
    assert node.jwt(entry_id, instance["instance_id"]).status_code == 200

    # the identity provider deactivates the owner over SCIM: flagged at once
    scim_token = ok(platform.cli("scim", "token", "create", "--name", "idp", "--json"))["token"]
    with httpx.Client(base_url=f"{platform.url}/scim/v2", timeout=30,
                      headers={"Authorization": f"Bearer {scim_token}"}) as scim:
        found = scim.get("/Users", params={"filter": 'userName eq "carol"'}).json()
        carol_id = found["Resources"][0]["id"]
        patched = scim.patch(f"/Users/{carol_id}", json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}]})
        assert patched.status_code == 200 and patched.json()["active"] is False, patched.text
    orphans = ok(platform.cli("agents", "orphans", "--json"))
    assert [(o["agent"], [f["kind"] for f in o["findings"]]) for o in orphans] == [
        ("trading", ["owner_inactive"])]
    assert ok(platform.cli("agents", "show", "trading", "--json"))["open_findings"][0][
        "kind"] == "owner_inactive"

    # transfer to a new owner, who attests
    refused(platform.cli("agents", "transfer", "trading", "--to", "carol"), 2, "not active")
    ok(platform.cli("agents", "transfer", "trading", "--to", "alice", "--reason", "carol left"))
    refused(platform.cli("agents", "attest", "trading", "--owner", "bob"), 1,
            "not the owner")
    attested = ok(platform.cli("agents", "attest", "trading", "--owner", "alice", "--json"))
    assert attested["last_attested_by"] == "alice" and attested["open_findings"] == []

    # retire: SVIDs no longer issued, inbound blocked, later attempts reported
    steps = ok(platform.cli("agents", "retire", "trading", "--reason", "desk closed", "--json"))
    assert steps["finished"] and [s["status"] for s in steps["steps"]] == ["done"] * 6
    shown = ok(platform.cli("agents", "show", "trading", "--json"))
    assert shown["state"] == "retired" and shown["inbound_blocked"]
    assert shown["effective_tools"] == [] and shown["policy_binding"] is None
    assert all(i["retired_at"] for i in shown["instances"])
    assert node.x509(entry_id, instance["instance_id"]).json()["svids"] == []
    late = node.register(entry_id, 4243)
    assert late.status_code == 403 and late.json()["code"] == "agent_retired"
    assert node.jwt(entry_id, instance["instance_id"]).json()["code"] == "agent_retired"
    residual = ok(platform.cli("agents", "residual", "trading", "--json"))
    assert {r["kind"]: r["count"] for r in residual} == {
        "x509_svid": 1, "instance_registration": 1, "jwt_svid": 1}
    assert {r["node_id"] for r in residual} == {node.node_id}
    table = platform.cli("agents", "residual", "trading", env={"COLUMNS": "200"})
    assert "instance_registration" in table.stdout

    events = ok(platform.cli("agents", "events", "trading", "--json"))
    transitions = [(e["from_state"], e["to_state"]) for e in events["events"] if e["to_state"]]
    assert transitions == [
        (None, "registered"), ("registered", "active"), ("active", "pending_recertification"),
        ("pending_recertification", "active"), ("active", "pending_recertification"),
        ("pending_recertification", "active"), ("active", "suspended"),
        ("suspended", "active"), ("active", "retiring"), ("retiring", "retired")]
    suspended = next(e for e in events["events"] if e["to_state"] == "suspended")
    assert suspended["actor"] == "admin:dev" and suspended["reason"] == "incident 7"
    assert events["seal"]["sealed"] and events["seal"]["valid"]
    human = platform.cli("agents", "events", "trading", env={"COLUMNS": "200"})
    assert "valid" in human.stdout
    refused(platform.cli("agents", "resume", "trading"), 1, "it is retired")
    refused(platform.cli("agents", "update", "trading", "--purpose", "again"), 1,
            "no longer change")
    refused(register_result(platform, "trading"), 1, "exists already")


def register_result(platform: DevPlatform, name: str) -> subprocess.CompletedProcess[str]:
    return platform.cli("agents", "register", name, "--owner", "alice", "--purpose", "p",
                        "--tier", "dev", "--policy", "p", "--tool", "t", "--selector",
                        "unix:uid:1", "--model-provider", "a", "--model-name", "b",
                        "--model-version", "1", "--hosting", "h", "--image-digest", DIGEST)


def test_bad_input_exits_2_with_one_line(platform: DevPlatform) -> None:
    ok(platform.cli("users", "create", "dana"))
    base = ["agents", "register", "x", "--owner", "dana", "--purpose", "p", "--tier", "dev",
            "--policy", "p", "--tool", "t", "--selector", "unix:uid:1", "--model-provider",
            "a", "--model-name", "b", "--model-version", "1", "--hosting", "h"]
    cases = [
        ([*base, "--image-digest", "latest"], "image_digest"),
        ([*base, "--image-digest", DIGEST, "--config", "[1]"], "JSON object"),
        ([*base, "--image-digest", DIGEST, "--config", "{nope"], "not JSON"),
        ([*base, "--image-digest", DIGEST, "--sanitize-hook", "rm -rf /"], "command hook"),
        ([*base, "--image-digest", DIGEST, "--sanitize-hook", "missing"], "hooks directory"),
        ([*base, "--image-digest", DIGEST, "--policy-binding", "qa"], "TIER=POLICY_SET"),
        (["agents", "register", "Bad_Name", "--owner", "dana", "--purpose", "p", "--tier",
          "dev"], "agent name"),
        ([*base, "--image-digest", DIGEST, "--selector", "nocolon"], "type:value"),
        (["agents", "register", "y", "--owner", "nobody-here", "--purpose", "p", "--tier",
          "dev", "--policy", "p", "--tool", "t", "--selector", "unix:uid:1",
          "--model-provider", "a", "--model-name", "b", "--model-version", "1", "--hosting",
          "h", "--image-digest", DIGEST], "not a user of the directory"),
        (["agents", "list", "--state", "sleeping"], "not a lifecycle state"),
    ]
    for args, text in cases:
        refused(platform.cli(*args), 2, text)
    refused(platform.cli("agents", "show", "nobody"), 1, "no agent named 'nobody'")
    assert ok(platform.cli("agents", "list", "--json")) == []


# --- kill -9 in the middle of a retirement ----------------------------------------------------


def _hook(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _retirement(platform: DevPlatform, name: str) -> dict[str, Any]:
    with platform.http() as http:
        response = http.get(f"/api/v1/agents/{name}/retirement")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def crash_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    pid_file = tmp_path / "slow.pid"  # the hook the killed server left running
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


def test_retirement_resumes_after_kill_9_without_repeating_finished_steps(
        crash_dir: Path) -> None:
    data = crash_dir / "dev"
    hooks = data / "hooks"
    hooks.mkdir(parents=True)
    effects, marker, pid_file = crash_dir / "effects.log", crash_dir / "slow.started", (
        crash_dir / "slow.pid")
    _hook(hooks / "count", f'echo "count $1" >> {effects}\n')
    # first run: note the pid, then sleep (the server is killed meanwhile); second run: effect
    _hook(hooks / "slow", f'if [ ! -e {marker} ]; then echo $$ > {pid_file}; touch {marker}; '
                          f'exec sleep 120; fi\necho "slow $1" >> {effects}\n')

    first = DevPlatform(data).start()
    try:
        ok(first.cli("users", "create", "carol"))
        register(first, "crash", "--activate", "--sanitize-hook", "count",
                 "--sanitize-hook", "slow")
        started = ok(first.cli("agents", "retire", "crash", "--no-wait", "--json"))
        assert started["state"] == "retiring"
        _wait(marker.exists, 30, "the slow hook to start")
        before = {s["name"]: s for s in _retirement(first, "crash")["steps"]}
        assert [before[n]["status"] for n in ("revoke_credentials", "remove_grants",
                                              "block_inbound")] == ["done"] * 3
        assert before["sanitize_memory"]["status"] == "running"
        assert before["sanitize_memory"]["result"]["hooks"]["command:count"]["status"] == "done"
        assert before["seal_trail"]["status"] == "pending"
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)  # kill -9, between steps 4 and 5
        first.process.wait(timeout=30)
    finally:
        first.stop()
    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)  # the machine went down too
    assert effects.read_text().splitlines() == ["count crash"]

    with DevPlatform(data) as second:  # the server resumes unfinished retirements at start
        _wait(lambda: _retirement(second, "crash")["finished"], 60, "the retirement to end")
        after = {s["name"]: s for s in _retirement(second, "crash")["steps"]}
        for name in ("revoke_credentials", "remove_grants", "block_inbound"):
            assert after[name]["attempts"] == 1
            assert after[name]["completed_at"] == before[name]["completed_at"]
        assert after["sanitize_memory"]["attempts"] == 2
        hooks_done = after["sanitize_memory"]["result"]["hooks"]
        assert hooks_done["command:count"]["attempts"] == 1
        assert (hooks_done["command:slow"]["status"], hooks_done["command:slow"]["attempts"]) == (
            "done", 1)
        assert [after[n]["attempts"] for n in ("seal_trail", "watch_residual")] == [1, 1]
        events = ok(second.cli("agents", "events", "crash", "--json"))
        kinds = [e["kind"] for e in events["events"]]
        assert kinds.count("retirement_started") == 1 and kinds.count("retired") == 1
        assert kinds.count("retirement_step") == 6
        assert events["seal"]["valid"]
    # every hook's side effect happened exactly once
    assert effects.read_text().splitlines() == ["count crash", "slow crash"]
