"""Policy commands: apply a bundle, read it and its history, explain a decision, run cases.

``tabard.policy`` (and Cedar with it) is imported inside the commands that need it, so the
CLI's start-up stays fast for every other command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_fields, print_json, print_table, when
from tabard.errors import Invalid

if TYPE_CHECKING:
    from tabard.policy import Decision, DecisionRequest

__all__ = ["register"]

policy_app = typer.Typer(
    help="Cedar policies and blended decisions (agent ∩ user ∩ delegated scope).",
    no_args_is_help=True)


def _epoch_line(epoch: dict[str, Any]) -> str:
    return (f"policy epoch {epoch['epoch']} by {epoch['actor']} at {when(epoch['at'])} "
            f"(sha256 {epoch['sha256'][:16]}…)")


@policy_app.command("apply")
def policy_apply(
    directory: Annotated[Path, typer.Argument(help="Policy directory: *.cedar files and one "
                                                   "catalog.yaml.")],
    expected_epoch: Annotated[int | None, typer.Option(
        "--expected-epoch", help="Refuse unless the server is at this epoch.")] = None,
    server: ServerOpt = None, json_out: JsonOpt = False,
) -> None:
    """Validate a policy directory and make it the server's new policy epoch.

    Example: tabard policy apply ./policies
    """
    from tabard.policy import compile_bundle, read_bundle

    bundle = read_bundle(directory)
    compile_bundle(bundle)  # the same checks the server runs, with file names, before sending
    applied = AdminClient(server).request("PUT", "/api/v1/policies", json={
        "files": bundle.as_dict(), "expected_epoch": expected_epoch})
    if json_out:
        print_json(applied)
        return
    epoch = applied["epoch"]
    if applied["changed"]:
        console.print(f"applied {len(epoch['files'])} files as {_epoch_line(epoch)}")
    else:
        console.print(f"unchanged: the server has this bundle already as {_epoch_line(epoch)}")


@policy_app.command("list")
def policy_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Show the current policy epoch and its files.

    Example: tabard policy list
    """
    current = AdminClient(server).get("/api/v1/policies")
    if json_out:
        print_json(current)
        return
    if current["epoch"] is None:
        console.print("no policies applied yet: every decision is deny")
        return
    console.print(_epoch_line(current["epoch"]))
    print_table(["file", "lines", "bytes"],
                [(name, text.count("\n") + 1, len(text.encode()))
                 for name, text in sorted(current["files"].items())])


@policy_app.command("history")
def policy_history(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 50,
    server: ServerOpt = None, json_out: JsonOpt = False,
) -> None:
    """Every accepted policy change, newest first: epoch, time, actor, digest, files.

    Example: tabard policy history --limit 10
    """
    history = AdminClient(server).get(f"/api/v1/policies/history?limit={limit}")["history"]
    if json_out:
        print_json(history)
        return
    print_table(["epoch", "at", "actor", "sha256", "files"],
                [(e["epoch"], when(e["at"]), e["actor"], e["sha256"][:16],
                  ", ".join(e["files"])) for e in history])


def _print_decision(decision: dict[str, Any]) -> None:
    policies = decision["policies"]
    print_fields({
        "decision": decision["decision"].upper(),
        "mode": decision["delegation"] or "-",
        "obligations": ", ".join(decision["obligations"]) or "-",
        "reasons": "\n".join(decision["reasons"]) or "-",
        "agent policies": ", ".join(policies["agent"]) or "-",
        "user policies": ", ".join(policies["user"]) or "-",
        "policy epoch": decision["policy_epoch"],
        "cached": "yes" if decision["cached"] else "no",
    })


@policy_app.command("explain")
def policy_explain(
    agent: Annotated[str, typer.Option("--agent", help="The agent instance SPIFFE ID.")],
    action: Annotated[str, typer.Option("--action", help="tools/call, resources/read, "
                                                         "prompts/get, an A2A method, or an "
                                                         "HTTP method.")],
    resource: Annotated[str, typer.Option("--resource", help="TYPE::ID, e.g. "
                                                             "Tool::jira.search.")],
    user: Annotated[str | None, typer.Option("--user", help="The user the agent acts "
                                                            "for.")] = None,
    context: Annotated[str | None, typer.Option(
        "--context", help='JSON: {"risk": 30, "path": "/x", "arguments": {...}}.')] = None,
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="The scope of one delegation hop (repeatable, in order).")] = None,
    server: ServerOpt = None, json_out: JsonOpt = False,
) -> None:
    """Ask the server for a blended decision and show why.

    Example: tabard policy explain --agent spiffe://example.org/agent/assistant/instance/01J
    --user alice --action tools/call --resource Tool::jira.create_issue --scope 'tools:jira.*'
    """
    try:
        parsed = json.loads(context) if context else None
    except ValueError:
        raise Invalid("--context must be a JSON object") from None
    decision = AdminClient(server).post("/api/v1/decisions", {
        "agent": agent, "user": user, "action": action, "resource": resource,
        "context": parsed, "chain": [{"actor": agent, "scope": s} for s in scope or []]})
    if json_out:
        print_json(decision)
    else:
        _print_decision(decision)


def _remote(client: AdminClient) -> Any:
    from tabard.policy import Decision

    def decide(request: DecisionRequest) -> Decision:
        body = request.as_dict()
        body["resource"] = str(request.resource)
        return Decision.from_dict(client.post("/api/v1/decisions", body))

    return decide


@policy_app.command("test")
def policy_test(
    file: Annotated[Path, typer.Argument(help="A YAML file of decision cases.")],
    live: Annotated[bool, typer.Option(
        "--live", help="Ask the server (its policies, people and agents) instead of "
                       "deciding offline over the file's policy directory and fixtures.")]
    = False,
    server: ServerOpt = None, json_out: JsonOpt = False,
) -> None:
    """Run decision cases; exit 1 if any case does not get the decision it expects.

    Example: tabard policy test policies/cases.yaml
    """
    from tabard.policy.cases import load_suite, local_engine, run_suite

    suite = load_suite(file)
    decide = _remote(AdminClient(server)) if live else local_engine(suite).decide
    results = run_suite(suite.cases, decide)
    failed = [r for r in results if not r.passed]
    if json_out:
        print_json({"passed": len(results) - len(failed), "failed": len(failed), "cases": [
            {"name": r.case.name, "expect": r.case.expect.value,
             "expect_obligations": sorted(r.case.obligations)
             if r.case.obligations is not None else None,
             "passed": r.passed, "error": r.error,
             "decision": r.decision.as_dict() if r.decision else None} for r in results]})
    else:
        print_table(["case", "expect", "got", "obligations", "result"], [
            (r.case.name,
             r.case.expect.value + (f" [{', '.join(sorted(r.case.obligations))}]"
                                    if r.case.obligations else ""),
             r.decision.effect.value if r.decision else f"error: {r.error}",
             ", ".join(o.value for o in r.decision.obligations) if r.decision else "-",
             "pass" if r.passed else "FAIL") for r in results])
        for r in failed:
            if r.decision is not None:
                console.print(f"FAIL {r.case.name}: " + "; ".join(r.decision.reasons),
                              markup=False)
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@policy_app.command("schema")
def policy_schema() -> None:
    """Print the Cedar schema policies are validated against.

    Example: tabard policy schema > tabard.cedarschema
    """
    from tabard.policy import CEDAR_SCHEMA

    console.print(CEDAR_SCHEMA, markup=False, end="")


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
