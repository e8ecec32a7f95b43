"""Agent commands: definitions, lifecycle, recertification, ownership, orphans, retirement."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_fields, print_json, print_table, when
from tabard.errors import Invalid, TabardError
from tabard.registry import SanitizationHook, Selector
from tabard.spiffe import SpiffeId

__all__ = ["register"]

agents_app = typer.Typer(
    help="Agent definitions and their lifecycle: register, recertify, transfer, retire.",
    no_args_is_help=True)

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_NODE_ID = re.compile(r"[0-9a-f]{1,32}")

NameArg = Annotated[str, typer.Argument(help="Agent name.")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the events).")]
RequestedByOpt = Annotated[str | None, typer.Option(
    "--requested-by", help="Who asks for the change (default: the admin token's name); the "
    "approver must be someone else.")]
ToolsOpt = Annotated[list[str] | None, typer.Option("--tool", "-t", help="Declared tool "
                                                    "(repeatable).")]
BindingOpt = Annotated[list[str] | None, typer.Option(
    "--policy-binding", help="TIER=POLICY_SET (repeatable); an empty POLICY_SET removes it.")]
HookOpt = Annotated[list[str] | None, typer.Option(
    "--sanitize-hook", help="Memory-sanitisation hook run at retirement: the name of an "
    "executable in the server's hooks directory, or an http(s) webhook URL (repeatable).")]
ConfigOpt = Annotated[str | None, typer.Option(
    "--config", help="Agent config: a JSON object, or @FILE to read it from a file.")]


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise Invalid(f"agent name {value!r} must be 1-63 characters of a-z, 0-9 and '-'")
    return value


def _path(name: str, suffix: str = "") -> str:
    return f"/api/v1/agents/{quote(_name(name), safe='')}{suffix}"


def _bindings(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        tier, sep, policy_set = value.partition("=")
        if not sep or not tier:
            raise Invalid(f"--policy-binding {value!r} must be TIER=POLICY_SET")
        out[tier.strip()] = policy_set.strip()
    return out


def _config(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            raise Invalid(f"--config: cannot read {value[1:]}: {exc.strerror}") from None
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise Invalid(f"--config is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise Invalid("--config must be a JSON object")
    return parsed


def _hooks(values: list[str] | None) -> list[str]:
    return [SanitizationHook.parse(v).label for v in values or []]


def _selectors(values: list[str]) -> list[str]:
    return [str(Selector.parse(v)) for v in values]


def _node(client: AdminClient, value: str | None) -> str | None:
    """A node's SPIFFE ID from its SPIFFE ID, node id or a unique prefix of the id."""
    if value is None:
        return None
    if value.startswith("spiffe://"):
        return str(SpiffeId.parse(value))
    if not _NODE_ID.fullmatch(value):
        raise Invalid(f"--node {value!r} is neither a SPIFFE ID nor a node id")
    nodes = [n for n in client.get("/api/v1/nodes") if str(n["id"]).startswith(value)]
    if len(nodes) != 1:
        raise Invalid(f"--node {value!r} matches {len(nodes)} nodes; give more of the id")
    return str(nodes[0]["spiffe_id"])


def _show(agent: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(agent)
        return
    model = agent["model"]
    pending_tools = sorted(set(agent["declared_tools"]) - set(agent["effective_tools"]))
    tools = ", ".join(agent["effective_tools"]) or "-"
    if pending_tools:
        tools += f"  (pending: {', '.join(pending_tools)})"
    flags = [f for f, on in (("read-only", agent["read_only"]),
                             ("inbound blocked", agent["inbound_blocked"])) if on]
    print_fields({
        "name": agent["name"],
        "owner": agent["owner"],
        "state": agent["state"] + (f" ({', '.join(flags)})" if flags else ""),
        "purpose": agent["purpose"],
        "model": f"{model['provider']}/{model['name']} {model['version']}",
        "hosting": agent["hosting"],
        "tier": agent["tier"],
        "tools": tools,
        "policy binding": agent["policy_binding"] or "-",
        "bindings": ", ".join(f"{k}={v}" for k, v in agent["policy_bindings"].items()) or "-",
        "delegation": agent["delegation"],
        "checksum": agent["checksum"],
        "image digest": agent["image_digest"],
        "prompt digest": agent["system_prompt_digest"] or "-",
        "SPIFFE ID": agent["spiffe_id_template"],
        "entry": agent["entry_id"] or "-",
        "hooks": ", ".join(agent["sanitization_hooks"]) or "-",
        "last attestation": (f"{agent['last_attested_by']} at {when(agent['last_attested_at'])}"
                             if agent["last_attested_at"] else "never"),
        "attestation due": when(agent["attestation_due_at"]),
        "seal": agent["seal"] or "-",
        "created": when(agent["created_at"]),
        "state since": when(agent["state_changed_at"]),
    })
    if agent["pending_changes"]:
        print_table(["change", "kind", "value", "requested by", "at"], [
            [c["id"], c["kind"], _payload(c["payload"]), c["requested_by"],
             when(c["requested_at"])] for c in agent["pending_changes"]],
            title="Pending recertification")
    if agent["open_findings"]:
        print_table(["finding", "detail", "action", "since"], [
            [f["kind"], f["detail"], f["action"], when(f["opened_at"])]
            for f in agent["open_findings"]], title="Open findings")
    if agent["instances"]:
        print_table(["instance", "node", "pid", "last seen", "retired"], [
            [i["id"], i["node_id"][:12], i["pid"], when(i["last_seen_at"]),
             when(i["retired_at"])] for i in agent["instances"]], title="Instances")
    if agent["retirement"]:
        _steps(agent["retirement"])
    if agent["residual_use"]:
        _residual(agent["residual_use"])


def _payload(payload: dict[str, Any]) -> str:
    if "tool" in payload:
        return str(payload["tool"])
    if "tier" in payload:
        return str(payload["tier"])
    if "model" in payload:
        m = payload["model"]
        return f"{m['provider']}/{m['name']} {m['version']}"
    return f"checksum {str(payload.get('checksum', ''))[:16]}…"


def _steps(steps: list[dict[str, Any]]) -> None:
    print_table(["#", "step", "status", "attempts", "done at", "error"], [
        [s["number"], s["name"], s["status"], s["attempts"], when(s["completed_at"]),
         s["error"] or ""] for s in steps], title="Retirement")


def _residual(rows: list[dict[str, Any]]) -> None:
    print_table(["kind", "SPIFFE ID", "node", "count", "first", "last"], [
        [r["kind"], r["spiffe_id"], (r["node_id"] or "-")[:12], r["count"], when(r["first_at"]),
         when(r["last_at"])] for r in rows], title="Residual use (refused)")


def _update(client: AdminClient, name: str, body: dict[str, Any], json_out: bool) -> None:
    result = client.request("PATCH", _path(name), json=body)
    if json_out:
        print_json(result)
        return
    for change in result["pending"]:
        console.print(f"pending recertification: {change['kind']} {_payload(change['payload'])}"
                      f" (change {change['id']}, requested by {change['requested_by']})",
                      markup=False)
    if result["applied"]:
        console.print(f"applied: {', '.join(result['applied'])}", markup=False)
    _show(result["agent"], False)


@agents_app.command("register")
def agents_register(
    name: NameArg,
    owner: Annotated[str, typer.Option("--owner", help="The accountable person (directory "
                                                      "userName).")],
    purpose: Annotated[str, typer.Option("--purpose", help="What the agent is for.")],
    tier: Annotated[str, typer.Option("--tier", help="dev, staging or prod.")],
    tool: ToolsOpt = None,
    selector: Annotated[list[str] | None, typer.Option(
        "--selector", "-s", help="Selector of the instance-template entry (repeatable).")
    ] = None,
    model_provider: Annotated[str, typer.Option("--model-provider")] = "",
    model_name: Annotated[str, typer.Option("--model-name")] = "",
    model_version: Annotated[str, typer.Option("--model-version")] = "",
    hosting: Annotated[str, typer.Option("--hosting", help="Hosting environment.")] = "",
    image_digest: Annotated[str, typer.Option(
        "--image-digest", help="sha256:<hex> of the image or binary.")] = "",
    system_prompt_digest: Annotated[str | None, typer.Option(
        "--system-prompt-digest", help="sha256:<hex> of the system prompt.")] = None,
    config: ConfigOpt = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Policy set bound to the agent's tier.")] = None,
    policy_binding: BindingOpt = None,
    delegation: Annotated[str, typer.Option(
        "--delegation", help="hybrid, impersonation or agent_as_principal.")] = "hybrid",
    node: Annotated[str | None, typer.Option(
        "--node", help="Parent node of the entry (SPIFFE ID or node id); default: the only "
        "node.")] = None,
    sanitize_hook: HookOpt = None,
    activate: Annotated[bool, typer.Option("--activate", help="Activate at once.")] = False,
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Register an agent: its definition and its instance-template entry.

    Example: tabard agents register trading --owner carol --purpose 'Places trades' --tier dev --policy trading-dev --tool quotes.read --tool orders.place --selector unix:uid:1000 --model-provider anthropic --model-name claude --model-version 4 --hosting k8s/eu --image-digest sha256:<hex> --activate
    """  # noqa: E501
    bindings = _bindings(policy_binding)
    if policy is not None:
        bindings.setdefault(tier, policy)
    body: dict[str, Any] = {
        "name": _name(name), "owner": owner, "purpose": purpose, "tier": tier,
        "tools": tool or [], "selectors": _selectors(selector or []),
        "model": {"provider": model_provider, "name": model_name, "version": model_version},
        "hosting": hosting, "image_digest": image_digest,
        "system_prompt_digest": system_prompt_digest, "config": _config(config),
        "policy_bindings": bindings, "delegation": delegation,
        "sanitization_hooks": _hooks(sanitize_hook), "activate": activate, "reason": reason,
    }
    client = AdminClient(server)
    body["parent_id"] = _node(client, node)
    _show(client.post("/api/v1/agents", body), json_out)


@agents_app.command("list")
def agents_list(
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="Only agents in this state.")
                     ] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List agents by name.

    Example: tabard agents list --owner carol --state active
    """
    params = "&".join(f"{k}={quote(v, safe='')}" for k, v in (("owner", owner),
                                                               ("state", state)) if v)
    rows: list[dict[str, Any]] = AdminClient(server).get(
        "/api/v1/agents" + (f"?{params}" if params else ""))
    if json_out:
        print_json(rows)
        return
    print_table(["name", "owner", "state", "tier", "tools", "flags", "checksum"], [
        [r["name"], r["owner"], r["state"], r["tier"], len(r["tools"]),
         ",".join(f for f, on in (("ro", r["read_only"]), ("blocked", r["inbound_blocked"]))
                  if on) or "-", r["checksum"][:12]] for r in rows])


@agents_app.command("show")
def agents_show(name: NameArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Show an agent: owner, state, tools and pending changes, instances, checksum, last
    attestation, open findings, retirement and residual use.

    Example: tabard agents show trading
    """
    _show(AdminClient(server).get(_path(name)), json_out)


@agents_app.command("update")
def agents_update(
    name: NameArg,
    purpose: Annotated[str | None, typer.Option("--purpose")] = None,
    hosting: Annotated[str | None, typer.Option("--hosting")] = None,
    image_digest: Annotated[str | None, typer.Option("--image-digest")] = None,
    add_tool: Annotated[list[str] | None, typer.Option(
        "--add-tool", help="Add a tool (pending recertification; repeatable).")] = None,
    remove_tool: Annotated[list[str] | None, typer.Option(
        "--remove-tool", help="Remove a tool (at once; repeatable).")] = None,
    model_provider: Annotated[str | None, typer.Option("--model-provider")] = None,
    model_name: Annotated[str | None, typer.Option("--model-name")] = None,
    model_version: Annotated[str | None, typer.Option("--model-version")] = None,
    tier: Annotated[str | None, typer.Option(
        "--tier", help="A higher tier waits for recertification, a lower one applies at "
        "once.")] = None,
    system_prompt_digest: Annotated[str | None, typer.Option("--system-prompt-digest")
                                    ] = None,
    clear_system_prompt_digest: Annotated[bool, typer.Option(
        "--clear-system-prompt-digest")] = False,
    config: ConfigOpt = None,
    clear_config: Annotated[bool, typer.Option("--clear-config")] = False,
    policy_binding: BindingOpt = None,
    delegation: Annotated[str | None, typer.Option("--delegation")] = None,
    selector: Annotated[list[str] | None, typer.Option(
        "--selector", "-s", help="New selector set of the entry (repeatable; replaces all).")
    ] = None,
    node: Annotated[str | None, typer.Option("--node", help="New parent node of the entry.")
                    ] = None,
    sanitize_hook: HookOpt = None,
    no_sanitize_hooks: Annotated[bool, typer.Option(
        "--no-sanitize-hooks", help="Remove every sanitisation hook.")] = False,
    requested_by: RequestedByOpt = None,
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change an agent. Adding a tool, raising the tier, changing the model, the system
    prompt digest or the config wait for recertification; the rest applies at once.

    Example: tabard agents update trading --add-tool orders.cancel --requested-by carol --reason 'cancel stale orders'
    """  # noqa: E501
    body: dict[str, Any] = {
        "purpose": purpose, "hosting": hosting, "image_digest": image_digest,
        "add_tools": add_tool or [], "remove_tools": remove_tool or [],
        "model_provider": model_provider, "model_name": model_name,
        "model_version": model_version, "tier": tier,
        "system_prompt_digest": system_prompt_digest,
        "clear_system_prompt_digest": clear_system_prompt_digest, "config": _config(config),
        "clear_config": clear_config, "policy_bindings": _bindings(policy_binding),
        "delegation": delegation,
        "selectors": _selectors(selector) if selector else None,
        "sanitization_hooks": [] if no_sanitize_hooks else (
            _hooks(sanitize_hook) if sanitize_hook else None),
        "requested_by": requested_by, "reason": reason,
    }
    client = AdminClient(server)
    body["parent_id"] = _node(client, node)
    _update(client, name, body, json_out)


@agents_app.command("promote")
def agents_promote(
    name: NameArg,
    tier: Annotated[str, typer.Option("--tier", help="The higher tier.")],
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Policy set for the new tier (needed unless bound already).")] = None,
    requested_by: RequestedByOpt = None,
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ask for a higher tier; it applies once an approver recertifies it.

    Example: tabard agents promote trading --tier prod --policy trading-prod --requested-by carol
    """
    result = AdminClient(server).post(_path(name, "/promote"), {
        "tier": tier, "policy_binding": policy, "requested_by": requested_by,
        "reason": reason})
    if json_out:
        print_json(result)
        return
    for change in result["pending"]:
        console.print(f"pending recertification: tier {change['payload']['tier']} "
                      f"(change {change['id']})", markup=False)
    _show(result["agent"], False)


@agents_app.command("recertify")
def agents_recertify(
    name: NameArg,
    approver: Annotated[str, typer.Option(
        "--approver", help="Directory user with the approver role; not the requester.")],
    change: Annotated[str | None, typer.Option(
        "--change", help="Only this change (default: every pending change).")] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approve.")
                      ] = False,
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Approve (or reject) changes pending recertification (four eyes).

    Example: tabard agents recertify trading --approver alice --reason 'reviewed ticket 881'
    """
    decided = AdminClient(server).post(_path(name, "/recertify"), {
        "approver": approver, "change_id": change, "reject": reject, "reason": reason})
    if json_out:
        print_json(decided)
        return
    for c in decided:
        console.print(f"{c['status']}: {c['kind']} {_payload(c['payload'])} (change {c['id']}, "
                      f"by {c['decided_by']})", markup=False)


def _state_command(command: str, name: str, reason: str, server: str | None,
                   json_out: bool) -> None:
    agent = AdminClient(server).post(_path(name, f"/{command}"), {"reason": reason})
    if json_out:
        print_json(agent)
        return
    console.print(f"agent {agent['name']} is {agent['state']}", markup=False)


@agents_app.command("activate")
def agents_activate(name: NameArg, reason: ReasonOpt = "", server: ServerOpt = None,
                    json_out: JsonOpt = False) -> None:
    """Activate a registered agent: from now on its instances get SVIDs.

    Example: tabard agents activate trading
    """
    _state_command("activate", name, reason, server, json_out)


@agents_app.command("suspend")
def agents_suspend(name: NameArg, reason: ReasonOpt = "", server: ServerOpt = None,
                   json_out: JsonOpt = False) -> None:
    """Suspend an agent with the kill switch: every node stops serving its SVIDs, gateways
    deny, its tokens and leases are revoked; its lifecycle moves to suspended.

    Example: tabard agents suspend trading --reason 'incident 42'
    """
    from tabard.cli.kill import kill_path

    client = AdminClient(server)
    answer = client.post(kill_path("agent", _name(name), "suspend"), {"reason": reason})
    _print_kill(client, name, answer, json_out, "kill switch")


@agents_app.command("narrow")
def agents_narrow(
    name: NameArg,
    read_only: Annotated[bool, typer.Option("--read-only", help="Deny mutating operations.")]
    = False,
    block_category: Annotated[list[str] | None, typer.Option(
        "--block-category", help="Deny tools of this category (repeatable).")] = None,
    approval_above: Annotated[int | None, typer.Option(
        "--approval-above", min=0, max=100,
        help="A human approves operations of higher risk.")] = None,
    reason: ReasonOpt = "", server: ServerOpt = None, json_out: JsonOpt = False,
) -> None:
    """Narrow an agent with the kill switch (graduated response), everywhere at once.

    Example: tabard agents narrow trading --read-only --block-category payments -r 'review'
    """
    from tabard.cli.kill import kill_path, narrow_body, print_change

    body = narrow_body(reason, read_only, block_category, approval_above)
    print_change(AdminClient(server).post(kill_path("agent", _name(name), "narrow"), body),
                 json_out)


@agents_app.command("resume")
def agents_resume(name: NameArg, reason: ReasonOpt = "", server: ServerOpt = None,
                  json_out: JsonOpt = False) -> None:
    """Resume an agent: lift what the kill switch set (its suspension and narrowing, and the
    lifecycle suspension only if the kill switch made it); with nothing of the kill switch
    in force, resume a suspension the lifecycle made (e.g. the orphan sweep).

    Example: tabard agents resume trading --reason 'incident 42 closed'
    """
    from tabard.cli.kill import kill_path

    client = AdminClient(server)
    answer = client.post(kill_path("agent", _name(name), "resume"), {"reason": reason})
    if answer["event"] is None:
        _state_command("resume", name, reason, server, json_out)
        return
    _print_kill(client, name, answer, json_out, "kill switch lifted")


def _print_kill(client: AdminClient, name: str, answer: dict[str, Any], json_out: bool,
                what: str) -> None:
    """The agent as it now stands, after a kill-switch change."""
    agent = client.get(_path(name))
    if json_out:
        print_json({"agent": agent, "kill": answer})
        return
    console.print(f"agent {agent['name']} is {agent['state']} ({what}, signal "
                  f"{answer['event']['id']})", markup=False)


@agents_app.command("transfer")
def agents_transfer(
    name: NameArg,
    to: Annotated[str, typer.Option("--to", help="The new owner (directory userName).")],
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Give an agent a new owner, who must attest before the deadline or it is narrowed.

    Example: tabard agents transfer trading --to dave --reason 'carol moved teams'
    """
    agent = AdminClient(server).post(_path(name, "/transfer"), {"to": to, "reason": reason})
    if json_out:
        print_json(agent)
        return
    console.print(f"agent {agent['name']} is owned by {agent['owner']}; attestation due "
                  f"{when(agent['attestation_due_at'])}", markup=False)


@agents_app.command("attest")
def agents_attest(
    name: NameArg,
    owner: Annotated[str, typer.Option("--owner", help="The owner who attests.")],
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Record the owner's attestation that the agent is theirs and still needed.

    Example: tabard agents attest trading --owner dave
    """
    agent = AdminClient(server).post(_path(name, "/attest"), {"owner": owner,
                                                               "reason": reason})
    if json_out:
        print_json(agent)
        return
    console.print(f"agent {agent['name']} attested by {agent['last_attested_by']}; next due "
                  f"{when(agent['attestation_due_at'])}", markup=False)


@agents_app.command("retire")
def agents_retire(
    name: NameArg,
    reason: ReasonOpt = "",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is retired.")
                    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 600.0,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Retire an agent: revoke, remove grants, block inbound, sanitise memory, seal the
    trail, then report any later use. Safe to run again; it resumes where it stopped.

    Example: tabard agents retire trading --reason 'desk closed'
    """
    client = AdminClient(server)
    status = client.post(_path(name, "/retire"), {"reason": reason})
    deadline = time.monotonic() + timeout
    while wait and not status["finished"] and status["failed_step"] is None:
        if time.monotonic() > deadline:
            raise TabardError(f"agent {name} is not retired after {timeout:g}s; see "
                              f"'tabard agents show {name}'")
        time.sleep(0.5)
        status = client.get(_path(name, "/retirement"))
    if json_out:
        print_json(status)
    else:
        _steps(status["steps"])
    if status["failed_step"] is not None:
        failed = next(s for s in status["steps"] if s["name"] == status["failed_step"])
        raise TabardError(f"retirement step {failed['name']} failed: {failed['error']} "
                          f"(run 'tabard agents retire {name}' again to retry)")


@agents_app.command("events")
def agents_events(name: NameArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """The agent's lifecycle events (actor, reason, time) and, once retired, its seal.

    Example: tabard agents events trading
    """
    result = AdminClient(server).get(_path(name, "/events"))
    if json_out:
        print_json(result)
        return
    print_table(["#", "at", "event", "state", "actor", "reason"], [
        [e["seq"], when(e["at"]), e["kind"],
         f"{e['from_state'] or ''} → {e['to_state']}" if e["to_state"] else "",
         e["actor"], e["reason"]] for e in result["events"]])
    seal = result["seal"]
    if seal["sealed"]:
        verdict = "valid" if seal["valid"] else "BROKEN (the events differ from the seal)"
        console.print(f"seal {seal['seal']} over {seal['events']} events: {verdict}",
                      markup=False)


@agents_app.command("residual")
def agents_residual(name: NameArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Refused attempts to use the identity of a retiring or retired agent.

    Example: tabard agents residual trading
    """
    rows = AdminClient(server).get(_path(name, "/residual"))
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print(f"no attempt to use agent {name}'s identity was recorded", markup=False)
        return
    _residual(rows)


@agents_app.command("orphans")
def agents_orphans(
    sweep: Annotated[bool, typer.Option("--sweep", help="Run the orphan sweep first.")
                     ] = False,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Agents that may be orphans: owner gone or inactive, attestation overdue, no instance
    seen for long.

    Example: tabard agents orphans --sweep
    """
    client = AdminClient(server)
    if sweep:
        report = client.post("/api/v1/orphans/sweep")
        if not json_out:
            console.print(f"sweep: {report['agents']} agents, {report['opened']} findings "
                          f"opened, {report['resolved']} resolved, {report['suspended']} "
                          f"suspended, {report['narrowed']} narrowed", markup=False)
    rows = client.get("/api/v1/orphans")
    if json_out:
        print_json(rows)
        return
    print_table(["agent", "owner", "state", "finding", "detail", "action", "since"], [
        [o["agent"], o["owner"], o["state"], f["kind"], f["detail"], f["action"],
         when(f["opened_at"])] for o in rows for f in o["findings"]])


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")
