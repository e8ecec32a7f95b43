"""The local hook runner: executables of the hooks directory only, a clean environment, the
JSON description on stdin, a timeout that kills the hook's process group, and webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tabard.registry import (
    AgentDefinition,
    AgentState,
    Delegation,
    InvalidAgentError,
    LocalHookRunner,
    ModelRef,
    SanitizationHook,
    Tier,
)
from tabard.spiffe import TrustDomain

T0 = datetime(2026, 5, 1, tzinfo=UTC)
AGENT = AgentDefinition(
    name="trading", owner="carol", purpose="p", model=ModelRef("a", "b", "1"), hosting="h",
    tier=Tier.DEV, tools=("t",), image_digest="sha256:" + "ab" * 32, system_prompt_digest=None,
    config=None, checksum="0" * 64, policy_bindings={}, delegation=Delegation.HYBRID,
    entry_id=None, sanitization_hooks=(), state=AgentState.RETIRING, state_changed_at=T0,
    created_at=T0, updated_at=T0)


def hook(directory: Path, name: str, body: str) -> SanitizationHook:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return SanitizationHook.parse(name)


def runner(directory: Path, timeout: float = 10) -> LocalHookRunner:
    return LocalHookRunner(directory, TrustDomain("example.org"),
                           timeout=timedelta(seconds=timeout))


def test_a_command_gets_the_agent_and_a_clean_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABARD_KEK", "secret-key-material")
    out = tmp_path / "out.json"
    wipe = hook(tmp_path, "wipe", f'cat > {out}; env > {out}.env; echo "wiped $1"\n')
    outcome = runner(tmp_path).run(wipe, AGENT)
    assert outcome.ok and outcome.detail == "exit 0: wiped trading"
    payload = json.loads(out.read_text())
    assert payload == {"event": "agent.sanitize_memory", "agent": "trading", "owner": "carol",
                       "spiffe_id_prefix": "spiffe://example.org/agent/trading/",
                       "hook": "command:wipe"}
    env = out.with_suffix(".json.env").read_text()
    assert "TABARD_AGENT=trading" in env and "secret-key-material" not in env


def test_failures_missing_files_and_timeouts(tmp_path: Path) -> None:
    failing = hook(tmp_path, "fail", 'echo "disk busy" >&2; exit 3\n')
    assert runner(tmp_path).run(failing, AGENT).detail == "exit 3: disk busy"
    (tmp_path / "plain").write_text("not executable")
    for name in ("plain", "absent"):
        with pytest.raises(InvalidAgentError, match="hooks directory"):
            runner(tmp_path).check(SanitizationHook.parse(name))
        outcome = runner(tmp_path).run(SanitizationHook.parse(name), AGENT)
        assert not outcome.ok and "not an executable file" in outcome.detail
    marker = tmp_path / "child-finished"
    slow = hook(tmp_path, "slow", f"(sleep 3; touch {marker}) & sleep 30\n")
    outcome = runner(tmp_path, timeout=0.5).run(slow, AGENT)
    assert not outcome.ok and outcome.detail == "timed out after 0.5s"
    threading.Event().wait(3.5)
    assert not marker.exists()  # the whole process group was killed


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict[str, object]] = []
    status = 204

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(_Receiver.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/forget"
    finally:
        server.shutdown()
        server.server_close()


def test_webhooks_post_json_and_need_a_2xx(tmp_path: Path, receiver: str) -> None:
    _Receiver.bodies.clear()
    webhook = SanitizationHook.parse(receiver)
    runner(tmp_path).check(webhook)  # nothing to check locally
    assert runner(tmp_path).run(webhook, AGENT).detail == "HTTP 204"
    assert _Receiver.bodies[0]["agent"] == "trading"
    _Receiver.status = 500
    try:
        outcome = runner(tmp_path).run(webhook, AGENT)
    finally:
        _Receiver.status = 204
    assert (outcome.ok, outcome.detail) == (False, "HTTP 500")
    down = runner(tmp_path, timeout=2).run(SanitizationHook.parse("http://127.0.0.1:9/x"), AGENT)
    assert not down.ok and down.detail.startswith("request failed")
