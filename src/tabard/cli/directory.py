"""Directory commands: people (``tabard users``) and SCIM provisioning tokens (``tabard scim``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_fields, print_json, print_table, when

__all__ = ["register"]

users_app = typer.Typer(help="People in tabard's directory: owners and approvers of agents.",
                        no_args_is_help=True)
scim_app = typer.Typer(help="SCIM 2.0 provisioning at /scim/v2 for an identity provider.",
                       no_args_is_help=True)
scim_token_app = typer.Typer(help="SCIM bearer tokens (separate from admin tokens).",
                             no_args_is_help=True)
scim_app.add_typer(scim_token_app, name="token")

UserArg = Annotated[str, typer.Argument(help="The user's userName (case-insensitive).")]


def _user_path(user_name: str) -> str:
    return f"/api/v1/users/{quote(user_name, safe='')}"


def _status(user: dict[str, Any]) -> str:
    status = "active" if user["active"] else "inactive"
    return status if user["is_person"] else f"{status}, not a person"


def _show_user(user: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(user)
        return
    groups = [g["name"] if g["direct"] else f"{g['name']} (nested)" for g in user["groups"]]
    print_fields({
        "userName": user["user_name"],
        "id": user["id"],
        "display name": user["display_name"],
        "status": _status(user),
        "user type": user["user_type"],
        "emails": ", ".join(user["emails"]) or "-",
        "roles": ", ".join(user["roles"]) or "-",
        "own roles": ", ".join(user["own_roles"]) or "-",
        "groups": ", ".join(groups) or "-",
        "external id": user["external_id"],
        "created": when(user["created_at"]),
        "updated": when(user["updated_at"]),
    })


@users_app.command("list")
def users_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List people: status, effective roles, emails.

    Example: tabard users list --json
    """
    rows: list[dict[str, Any]] = AdminClient(server).get("/api/v1/users")
    if json_out:
        print_json(rows)
        return
    print_table(["userName", "display name", "status", "roles", "emails"],
                [[r["user_name"], r["display_name"], _status(r), ", ".join(r["roles"]) or "-",
                  ", ".join(r["emails"]) or "-"] for r in rows])


@users_app.command("show")
def users_show(user: UserArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Show one person: groups (direct and nested), roles and where they come from, status.

    Example: tabard users show carol
    """
    _show_user(AdminClient(server).get(_user_path(user)), json_out)


@users_app.command("create")
def users_create(
    user: UserArg,
    display_name: Annotated[str | None, typer.Option(
        "--display-name", help="Name shown to people.")] = None,
    email: Annotated[list[str] | None, typer.Option(
        "--email", help="Email address (repeatable; the first is primary).")] = None,
    role: Annotated[list[str] | None, typer.Option(
        "--role", help="tabard role, e.g. approver (repeatable).")] = None,
    user_type: Annotated[str | None, typer.Option(
        "--user-type", help="SCIM userType; shared, shared-mailbox, service and resource "
        "accounts are not people and cannot own agents.")] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it deactivated.")] = False,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a person directly, without an identity provider (development, small setups).

    Example: tabard users create carol --display-name "Carol Diaz" --email carol@example.com --role approver
    """  # noqa: E501
    body = {"user_name": user, "display_name": display_name, "emails": email or [],
            "roles": role or [], "user_type": user_type, "active": not inactive}
    _show_user(AdminClient(server).post("/api/v1/users", body), json_out)


@users_app.command("deactivate")
def users_deactivate(user: UserArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Deactivate a person; agents they own are checked for orphans at once.

    Example: tabard users deactivate carol
    """
    result = AdminClient(server).post(_user_path(user) + "/deactivate")
    if json_out:
        print_json(result)
    else:
        console.print(f"deactivated {result['user_name']}", markup=False)


@users_app.command("activate")
def users_activate(user: UserArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Reactivate a person.

    Example: tabard users activate carol
    """
    result = AdminClient(server).post(_user_path(user) + "/activate")
    if json_out:
        print_json(result)
    else:
        console.print(f"activated {result['user_name']}", markup=False)


@scim_token_app.command("create")
def scim_token_create(
    name: Annotated[str, typer.Option(
        "--name", help="Who uses the token, e.g. the identity provider.")] = "scim",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a SCIM bearer token for an identity provider and print it once.

    Example: tabard scim token create --name corporate-idp
    """
    client = AdminClient(server)
    result = client.post("/api/v1/scim-tokens", {"name": name})
    endpoint = f"{client.server}/scim/v2"
    if json_out:
        print_json({"id": result["id"], "name": result["name"], "token": result["token"],
                    "scim_url": endpoint})
        return
    console.print(f"SCIM token {result['name']} ({result['id']}), shown once:", markup=False)
    typer.echo(result["token"])
    console.print(f"SCIM endpoint: {endpoint}  (Authorization: Bearer <token>)", markup=False)


@scim_token_app.command("list")
def scim_token_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List SCIM tokens (names and use, never the tokens).

    Example: tabard scim token list
    """
    rows = AdminClient(server).get("/api/v1/scim-tokens")
    if json_out:
        print_json(rows)
        return
    print_table(["id", "name", "created", "last used", "revoked"],
                [[r["id"], r["name"], when(r["created_at"]), when(r["last_used_at"]),
                  when(r["revoked_at"])] for r in rows])


@scim_token_app.command("revoke")
def scim_token_revoke(token_id: Annotated[str, typer.Argument(help="Token id.")],
                      server: ServerOpt = None) -> None:
    """Revoke a SCIM token at once.

    Example: tabard scim token revoke 6d1c2a0e-...
    """
    AdminClient(server).delete(f"/api/v1/scim-tokens/{quote(token_id, safe='')}")
    console.print(f"revoked {token_id}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(scim_app, name="scim")
