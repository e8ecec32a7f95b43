"""Kill-switch commands: ``tabard kill suspend|narrow|resume|list`` for agents, instances,
users and nodes, and the agent shortcuts ``tabard agents suspend|narrow|resume``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_json, print_table, when
from tabard.errors import Invalid

__all__ = ["kill_path", "narrow_body", "print_change", "register"]

kill_app = typer.Typer(
    help="The kill switch: suspend or narrow an agent, instance, user or node everywhere.",
    no_args_is_help=True)

AgentOpt = Annotated[str | None, typer.Option("--agent", help="Agent definition name.")]
InstanceOpt = Annotated[str | None, typer.Option(
    "--instance", help="Agent instance SPIFFE ID.")]
UserOpt = Annotated[str | None, typer.Option("--user", help="User name.")]
NodeOpt = Annotated[str | None, typer.Option("--node", help="Node SPIFFE ID.")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why (kept with the entry "
                                        "and in the audit log).")]
ReadOnlyOpt = Annotated[bool, typer.Option("--read-only", help="Deny mutating operations.")]
CategoryOpt = Annotated[list[str] | None, typer.Option(
    "--block-category", help="Deny tools of this category (repeatable).")]
ApprovalOpt = Annotated[int | None, typer.Option(
    "--approval-above", min=0, max=100, help="A human approves operations of higher risk.")]
OnlyOpt = Annotated[str | None, typer.Option(
    "--only", help="Lift only the suspension or only the narrowing (suspend|narrow).")]


def kill_path(kind: str, value: str, action: str) -> str:
    return f"/api/v1/kill/{kind}/{quote(value, safe='')}/{action}"


def _target(agent: str | None, instance: str | None, user: str | None,
            node: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in (("agent", agent), ("instance", instance), ("user", user),
                                 ("node", node)) if v is not None]
    if len(given) != 1:
        raise Invalid("name exactly one target: --agent, --instance, --user or --node")
    return given[0]


def narrow_body(reason: str, read_only: bool, categories: list[str] | None,
                approval_above: int | None) -> dict[str, Any]:
    if not read_only and not categories and approval_above is None:
        raise Invalid("narrow needs --read-only, --block-category or --approval-above")
    return {"reason": reason, "read_only": read_only,
            "blocked_categories": list(categories or []), "approval_above": approval_above}


def _entry_text(entry: dict[str, Any]) -> str:
    n = entry.get("narrowing")
    if not n:
        return "suspended"
    parts = (["read-only"] if n.get("read_only") else []) + [
        f"blocked: {c}" for c in n.get("blocked_categories", [])]
    if n.get("approval_above") is not None:
        parts.append(f"approval above {n['approval_above']}")
    return "narrowed (" + ", ".join(parts) + ")"


def print_change(answer: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(answer)
        return
    target = f"{answer['target']['kind']} {answer['target']['value']}"
    event = answer.get("event")
    if event is None:
        console.print(f"{target}: nothing to resume", markup=False)
        return
    state = "; ".join(_entry_text(e) for e in answer["entries"]) or "not restricted"
    console.print(f"{target}: {state} (signal {event['id']})", markup=False)


@kill_app.command("suspend")
def kill_suspend(agent: AgentOpt = None, instance: InstanceOpt = None, user: UserOpt = None,
                 node: NodeOpt = None, reason: ReasonOpt = "", server: ServerOpt = None,
                 json_out: JsonOpt = False) -> None:
    """Suspend a target: every gateway and node refuses it at once.

    Example: tabard kill suspend --user alice --reason 'phished session'
    """
    kind, value = _target(agent, instance, user, node)
    print_change(AdminClient(server).post(kill_path(kind, value, "suspend"),
                                          {"reason": reason}), json_out)


@kill_app.command("narrow")
def kill_narrow(agent: AgentOpt = None, instance: InstanceOpt = None, user: UserOpt = None,
                node: NodeOpt = None, read_only: ReadOnlyOpt = False,
                block_category: CategoryOpt = None, approval_above: ApprovalOpt = None,
                reason: ReasonOpt = "", server: ServerOpt = None,
                json_out: JsonOpt = False) -> None:
    """Narrow a target (graduated response); replaces an earlier narrowing of it.

    Example: tabard kill narrow --user alice --read-only --block-category payments
    """
    kind, value = _target(agent, instance, user, node)
    body = narrow_body(reason, read_only, block_category, approval_above)
    print_change(AdminClient(server).post(kill_path(kind, value, "narrow"), body), json_out)


@kill_app.command("resume")
def kill_resume(agent: AgentOpt = None, instance: InstanceOpt = None, user: UserOpt = None,
                node: NodeOpt = None, only: OnlyOpt = None, reason: ReasonOpt = "",
                server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Lift what the kill switch set on a target (both entries, or --only one).

    Example: tabard kill resume --node spiffe://example.org/node/join_token/abc -r 'patched'
    """
    kind, value = _target(agent, instance, user, node)
    if only not in (None, "suspend", "narrow"):
        raise Invalid("--only is suspend or narrow")
    print_change(AdminClient(server).post(kill_path(kind, value, "resume"),
                                          {"reason": reason, "only": only}), json_out)


@kill_app.command("list")
def kill_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Everything the kill switch holds now.

    Example: tabard kill list --json
    """
    state = AdminClient(server).get("/api/v1/kill")
    if json_out:
        print_json(state)
        return
    print_table(["kind", "target", "action", "since", "by", "reason"],
                [[e["kind"], e["target"], _entry_text(e), when(e["at"]), e["actor"],
                  e["reason"]] for e in state["entries"]],
                title=f"kill switch (signal {state['last_event_id']})")


def register(app: typer.Typer) -> None:
    app.add_typer(kill_app, name="kill")
