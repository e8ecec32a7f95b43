"""``tabard kill``: help with an example on every command, and bad input refused with a
one-line error and exit 2 before any request is made."""

from __future__ import annotations

import pytest

from tests.support.platform import run_cli


@pytest.mark.parametrize("command", ["suspend", "narrow", "resume", "list"])
def test_every_kill_command_has_help_with_an_example(command: str) -> None:
    result = run_cli("kill", command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


@pytest.mark.parametrize(("args", "text"), [
    (["kill", "suspend"], "name exactly one target"),
    (["kill", "suspend", "--user", "a", "--node", "spiffe://x/node/n"], "exactly one"),
    (["kill", "narrow", "--user", "a"], "narrow needs"),
    (["kill", "resume", "--user", "a", "--only", "all"], "--only is suspend or narrow"),
    (["agents", "narrow", "trading"], "narrow needs"),
])
def test_bad_input_is_refused_before_any_request(args: list[str], text: str) -> None:
    result = run_cli(*args, env={"TABARD_SERVER_URL": "http://127.0.0.1:9",
                                 "TABARD_ADMIN_TOKEN": "unused"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and text in lines[0], result.stderr
