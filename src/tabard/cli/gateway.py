"""Gateway control commands: ``tabard routes create|list|show|delete`` and ``tabard approvals
list|show|approve|deny``.

Routes name the secrets the gateway injects, never their values (``tabard secrets put``
stores those). Approvals are the calls the gateway holds under ``require_approval``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_fields, print_json, print_table, when
from tabard.errors import Invalid

__all__ = ["register"]

routes_app = typer.Typer(
    help="Gateway routes: the upstreams the gateway serves at /mcp/NAME, /a2a/NAME and "
    "/http/NAME/..., with the credential it injects and the DLP profile it applies.",
    no_args_is_help=True,
)
approvals_app = typer.Typer(
    help="Calls the gateway holds for a person's approval (require_approval).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The route's name.")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="The approval's id.")]


def _route_path(name: str) -> str:
    return f"/api/v1/routes/{quote(name, safe='')}"


def _scopes(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        glob, sep, scope = pair.partition("=")
        if not sep or not glob.strip() or not scope.strip():
            raise Invalid(f"--scope {pair!r} must be GLOB=UPSTREAM_SCOPE")
        out[glob.strip()] = scope.strip()
    return out


def _credential(route: dict[str, Any]) -> str:
    c = route["credential"]
    if c["kind"] == "none":
        return "none"
    return f"{c['kind']} ({c['secret']})" if c.get("secret") else c["kind"]


@routes_app.command("create")
def routes_create(
    name: NameArg,
    protocol: Annotated[str, typer.Option("--protocol", help="mcp, a2a or http.")],
    upstream: Annotated[str, typer.Option("--upstream", help="The upstream's http(s) URL "
                                          "(no credentials in it).")],
    audience: Annotated[str | None, typer.Option(help="The audience of this route.")] = None,
    credential: Annotated[str, typer.Option(
        help="What the gateway injects: none, static, client_credentials or downstream_jwt."
    )] = "none",
    secret: Annotated[str | None, typer.Option(
        help="Vault secret injected (static) or the client secret (client_credentials).")
    ] = None,
    client_id_secret: Annotated[str | None, typer.Option(
        help="Vault secret holding the client id (client_credentials).")] = None,
    header: Annotated[str, typer.Option(help="Header the credential goes in.")
                      ] = "Authorization",
    scheme: Annotated[str, typer.Option(help="Scheme before the value ('' for none).")
                      ] = "Bearer",
    token_url: Annotated[str | None, typer.Option(
        help="Token endpoint of the upstream (client_credentials).")] = None,
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", metavar="GLOB=UPSTREAM_SCOPE",
        help="Upstream scope for operations matching GLOB (repeatable).")] = None,
    credential_audience: Annotated[str | None, typer.Option(
        help="aud of a downstream JWT (default: the upstream URL).")] = None,
    dlp_profile: Annotated[str | None, typer.Option(
        help="DLP profile applied to responses (default, secrets, block, block-secrets).")
    ] = None,
    dlp_action: Annotated[str, typer.Option(help="redact or block.")] = "redact",
    timeout: Annotated[float, typer.Option(help="Upstream timeout in seconds.")] = 30.0,
    strip_header: Annotated[list[str] | None, typer.Option(
        "--strip-header", help="A header of the agent's to drop before forwarding "
        "(repeatable).")] = None,
    approval_timeout: Annotated[float, typer.Option(
        help="Seconds a call waits for approval before it is denied.")] = 120.0,
    user_token_issuer: Annotated[list[str] | None, typer.Option(
        "--user-token-issuer", metavar="ISSUER",
        help="Accept users' own tokens from this issuer (one the authorization server "
        "trusts; dual-token mode, repeatable). Default: none.")] = None,
    push_url: Annotated[list[str] | None, typer.Option(
        "--push-url", metavar="HTTPS_PREFIX",
        help="A2A: an https URL prefix push-notification webhooks may start with "
        "(repeatable). Default: none, push configs are refused.")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace the route if it exists.")] = False,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a route (or replace one with --replace).

    Example: tabard routes create jira --protocol mcp --upstream https://jira.internal/mcp
    --credential static --secret jira-token --scope 'tools:jira.*=write:jira'
    """
    body: dict[str, Any] = {
        "protocol": protocol, "upstream": upstream, "audience": audience,
        "credential": {"kind": credential, "secret": secret, "header": header,
                       "scheme": scheme or None, "token_url": token_url,
                       "scopes": _scopes(scope or []), "audience": credential_audience,
                       "client_id_secret": client_id_secret},
        "dlp_profile": dlp_profile, "dlp_action": dlp_action, "timeout": timeout,
        "strip_headers": strip_header or [], "approval_timeout": approval_timeout,
        "user_token_issuers": user_token_issuer or [], "push_urls": push_url or [],
    }
    client = AdminClient(server)
    if replace:
        route = client.request("PUT", _route_path(name), json=body)
    else:
        route = client.post("/api/v1/routes", {"name": name, **body})
    if json_out:
        print_json(route)
    else:
        console.print(f"{'replaced' if replace else 'created'} route {route['name']} "
                      f"({route['protocol']} → {route['upstream']})", markup=False)


@routes_app.command("list")
def routes_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List routes, from the configuration and the API.

    Example: tabard routes list --json
    """
    rows: list[dict[str, Any]] = AdminClient(server).get("/api/v1/routes")
    if json_out:
        print_json(rows)
        return
    print_table(["name", "protocol", "upstream", "credential", "dlp", "timeout", "source"],
                [[r["name"], r["protocol"], r["upstream"], _credential(r),
                  f"{r['dlp_profile']}/{r['dlp_action']}" if r["dlp_profile"] else "-",
                  f"{r['timeout']:g}s", r["source"]] for r in rows])


@routes_app.command("show")
def routes_show(name: NameArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Show one route.

    Example: tabard routes show demo-tools
    """
    r: dict[str, Any] = AdminClient(server).get(_route_path(name))
    if json_out:
        print_json(r)
        return
    c = r["credential"]
    print_fields({
        "name": r["name"], "protocol": r["protocol"], "upstream": r["upstream"],
        "audience": r["audience"], "credential": _credential(r),
        "credential header": f"{c['header']}: {c['scheme'] or ''} …".replace("  ", " ")
        if c["kind"] != "none" else None,
        "token url": c["token_url"],
        "scopes": ", ".join(f"{k}={v}" for k, v in c["scopes"].items()) or None,
        "dlp": f"{r['dlp_profile']} ({r['dlp_action']})" if r["dlp_profile"] else None,
        "timeout": f"{r['timeout']:g}s", "approval timeout": f"{r['approval_timeout']:g}s",
        "strip headers": ", ".join(r["strip_headers"]) or None,
        "user token issuers": ", ".join(r.get("user_token_issuers") or []) or None,
        "push urls": ", ".join(r.get("push_urls") or []) or None, "source": r["source"],
        "created": when(r["created_at"]), "updated": when(r["updated_at"]),
    })


@routes_app.command("delete")
def routes_delete(name: NameArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a route; the gateway stops serving it.

    Example: tabard routes delete jira
    """
    AdminClient(server).delete(_route_path(name))
    if json_out:
        print_json({"name": name, "deleted": True})
    else:
        console.print(f"deleted route {name}", markup=False)


def _approval_path(approval_id: str) -> str:
    return f"/api/v1/approvals/{quote(approval_id, safe='')}"


@approvals_app.command("list")
def approvals_list(
    state: Annotated[str | None, typer.Option(
        help="Only approvals in this state: pending, approved, denied, expired.")] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List approvals, newest first.

    Example: tabard approvals list --state pending
    """
    if state is not None and state not in ("pending", "approved", "denied", "expired"):
        raise Invalid("--state must be pending, approved, denied or expired")
    path = "/api/v1/approvals" + (f"?state={state}" if state else "")
    rows: list[dict[str, Any]] = AdminClient(server).get(path)
    if json_out:
        print_json(rows)
        return
    print_table(["id", "state", "user", "agent", "action", "resource", "route", "requested",
                 "expires", "decided by"],
                [[r["id"], r["state"], r["user"], r["agent"], r["action"], r["resource"],
                  r["route"], when(r["requested_at"]), when(r["expires_at"]), r["decided_by"]]
                 for r in rows])


@approvals_app.command("show")
def approvals_show(approval_id: IdArg, server: ServerOpt = None,
                   json_out: JsonOpt = False) -> None:
    """Show one approval.

    Example: tabard approvals show 3f2a9c0d41b7e865
    """
    r: dict[str, Any] = AdminClient(server).get(_approval_path(approval_id))
    if json_out:
        print_json(r)
        return
    print_fields({"id": r["id"], "state": r["state"], "user": r["user"], "agent": r["agent"],
                  "instance": r["instance"], "action": r["action"], "resource": r["resource"],
                  "route": r["route"], "reason": r["reason"] or None,
                  "requested": when(r["requested_at"]), "expires": when(r["expires_at"]),
                  "decided by": r["decided_by"], "decided": when(r["decided_at"]),
                  "decision reason": r["decision_reason"] or None})


ApproverOpt = Annotated[str, typer.Option(
    "--approver", help="Who decides: an active directory user with the approver role, not "
    "the user the call is for.")]
ReasonOpt = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]


def _decide(verb: str, approval_id: str, approver: str, reason: str, server: str | None,
            json_out: bool) -> None:
    r = AdminClient(server).post(_approval_path(approval_id) + f"/{verb}",
                                 {"approver": approver, "reason": reason})
    if json_out:
        print_json(r)
    else:
        console.print(f"approval {r['id']} {r['state']} by {r['decided_by']} "
                      f"({r['user'] or 'no user'} via {r['agent']}: {r['action']} "
                      f"{r['resource']})", markup=False)


@approvals_app.command("approve")
def approvals_approve(approval_id: IdArg, approver: ApproverOpt, reason: ReasonOpt = "",
                      server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Approve a held call; the gateway lets it through.

    Example: tabard approvals approve 3f2a9c0d41b7e865 --approver bob --reason "release window"
    """
    _decide("approve", approval_id, approver, reason, server, json_out)


@approvals_app.command("deny")
def approvals_deny(approval_id: IdArg, approver: ApproverOpt, reason: ReasonOpt = "",
                   server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Deny a held call; the agent gets an error.

    Example: tabard approvals deny 3f2a9c0d41b7e865 --approver bob
    """
    _decide("deny", approval_id, approver, reason, server, json_out)


def register(app: typer.Typer) -> None:
    app.add_typer(routes_app, name="routes")
    app.add_typer(approvals_app, name="approvals")
