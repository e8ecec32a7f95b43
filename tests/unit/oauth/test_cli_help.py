"""Every OAuth command has help with an example (in process: no subprocess per command)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tabard.cli.main import app

COMMANDS = [["users", "token"], ["oauth", "clients", "list"], ["oauth", "clients", "register"],
            ["oauth", "clients", "delete"], ["oauth", "introspect"], ["oauth", "revoke"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
