"""``tabard policy test FILE`` offline: exit 0 when every case passes, 1 on a mismatch, 2 for
a broken case file; run in-process through the CLI's own entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tabard.cli.main import main
from tests.unit.policy.conftest import EXAMPLE

CASES = EXAMPLE.parent / "cases.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["policy", "test", *args])
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def test_the_example_cases_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(CASES))
    assert code == 0 and "8 passed, 0 failed" in out
    code, out, _ = run(capsys, str(CASES), "--json")
    report = json.loads(out)
    assert code == 0 and report["failed"] == 0 and len(report["cases"]) == 8


def test_a_mismatch_exits_1_and_says_why(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "policies")
    text = CASES.read_text().replace(
        "    resource: Tool::scanner.run_scan\n    expect: deny",
        "    resource: Tool::scanner.run_scan\n    expect: allow", 1)
    (tmp_path / "cases.yaml").write_text(text)
    code, out, _ = run(capsys, str(tmp_path / "cases.yaml"))
    assert code == 1 and "7 passed, 1 failed" in out
    assert "FAIL an engineer may not run the vulnerability scanner: " in out
    assert "no policy permits User alice" in out
    # a changed policy fails the suite too: the point of running it in CI
    people = tmp_path / "policies" / "people.cedar"
    people.write_text(people.read_text().replace('@obligation("redact")\n', ""))
    (tmp_path / "cases.yaml").write_text(CASES.read_text())
    code, out, _ = run(capsys, str(tmp_path / "cases.yaml"))
    assert code == 1 and "6 passed, 2 failed" in out


def test_broken_case_files_and_policies_exit_2(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cases.yaml"
    bad.write_text("policies: ./p\ncases:\n  - name: x\n    agent: a\n    action: tools/call\n"
                   "    resource: Tool::x\n    expect: maybe\n")
    code, _, err = run(capsys, str(bad))
    assert code == 2 and err.strip() == (f"error: {bad}: cases[0]: expect must be allow or "
                                         "deny")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.cedar").write_text("permit(principal, action, resource) when { 1 };")
    bad.write_text(bad.read_text().replace("maybe", "deny"))
    code, _, err = run(capsys, str(bad))
    assert code == 2 and err.startswith("error: policy bundle refused: a.cedar: ")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["apply", "list", "history", "explain", "test", "schema"])
def test_every_policy_command_has_help_with_an_example(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["policy", command, "--help"])
    assert exited.value.code == 0 and "Example" in capsys.readouterr().out


def test_schema_prints_the_cedar_schema(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["policy", "schema"])
    assert capsys.readouterr().out.startswith("namespace Tabard {")
