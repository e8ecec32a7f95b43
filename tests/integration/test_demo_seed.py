"""The demo scene seeds once: a second run, and a restart on the same data directory, find
everything in place (the route follows the new upstream port), and the decisions of the
scene hold over the seeded facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tabard.app import build_control_plane
from tabard.cli.demo import DEMO_TRUST_DOMAIN, ROUTE, SECRET, seed, seed_agent
from tabard.config import Settings

NODE = f"spiffe://{DEMO_TRUST_DOMAIN}/node/demo"


def test_seeding_is_idempotent_across_restarts(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TABARD_KEK", raising=False)
    settings = Settings(trust_domain=DEMO_TRUST_DOMAIN, data_dir=tmp_path / "d")
    plane = build_control_plane(settings)
    try:
        token = seed(plane, "http://127.0.0.1:7001/mcp")
        seed_agent(plane, NODE)
        assert seed(plane, "http://127.0.0.1:7001/mcp") == token
        seed_agent(plane, NODE)
        assert plane.routes is not None
        version = plane.routes.version()
        epoch = plane.policies.current().epoch.epoch  # type: ignore[union-attr]
    finally:
        plane.close()

    plane = build_control_plane(settings)  # a restart
    try:
        assert seed(plane, "http://127.0.0.1:7002/mcp") == token
        seed_agent(plane, NODE)
        people = plane.directory.people
        assert sorted(u.user_name for u in people.list_users()) == ["alice", "bob", "carol"]
        assert sorted(g.display_name for g in people.list_groups()) == ["engineering",
                                                                       "security"]
        assert "approver" in people.describe("bob").roles
        assert [s.name for s in plane.vault.secrets.list()] == [SECRET]
        assert plane.policies.current().epoch.epoch == epoch == 1  # type: ignore[union-attr]
        assert plane.routes is not None
        route = plane.routes.get(ROUTE)
        assert route.upstream == "http://127.0.0.1:7002/mcp"
        assert route.credential.kind == "static" and route.credential.secret == SECRET
        assert plane.routes.version() == version + 1
        agent = plane.agents.agents.get("assistant")
        assert agent.state.value == "active" and agent.delegation.value == "hybrid"
        assert agent.owner == "carol" and len(agent.tools) == 4
        assert len(plane.registry.entries.list()) == 1
    finally:
        plane.close()


def test_demo_policy_cases_pass(capsys: pytest.CaptureFixture[str]) -> None:
    from tabard.cli.main import main

    cases = Path(__file__).resolve().parents[2] / "examples" / "demo" / "cases.yaml"
    with pytest.raises(SystemExit) as exited:
        main(["policy", "test", str(cases), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert exited.value.code in (0, None)
    assert (report["passed"], report["failed"]) == (8, 0)
