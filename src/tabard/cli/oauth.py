"""OAuth commands: demo user tokens (``tabard users token``), registered clients,
introspection and revocation (``tabard oauth ...``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from tabard.cli.client import AdminClient
from tabard.cli.directory import users_app
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_fields, print_json, print_table, when
from tabard.errors import Invalid, TabardError, Unauthenticated, Unavailable

__all__ = ["register"]

oauth_app = typer.Typer(help="The OAuth 2 authorization server: clients, introspection, "
                        "revocation.", no_args_is_help=True)
clients_app = typer.Typer(help="Registered OAuth clients (agent instances need no "
                          "registration).", no_args_is_help=True)
oauth_app.add_typer(clients_app, name="clients")

TokenArg = Annotated[str, typer.Argument(help="An access token issued by tabard's AS.")]


def _form_post(server: str | None, path: str, data: dict[str, str]) -> httpx.Response:
    """A form POST with the admin token as bearer; OAuth errors become one-line errors."""
    client = AdminClient(server)
    token = os.environ.get("TABARD_ADMIN_TOKEN")
    if not token:
        raise Unauthenticated("no admin token: set TABARD_ADMIN_TOKEN")
    try:
        response = httpx.post(f"{client.server}{path}", data=data, timeout=30,
                              headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise Unavailable(f"cannot reach the server at {client.server}: "
                          f"{exc.__class__.__name__}") from None
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = f"{body.get('error')}: {body.get('error_description')}"
        except ValueError:
            detail = response.reason_phrase
        error = Invalid if response.status_code == 400 else TabardError
        if response.status_code == 401:
            error = Unauthenticated
        raise error(f"{detail} (HTTP {response.status_code})")
    return response


def users_token(
    user: Annotated[str, typer.Option("--user", "-u", help="userName of an active person.")],
    audience: Annotated[str | None, typer.Option(
        help="Token audience (default: the authorization server's issuer).")] = None,
    scope: Annotated[str | None, typer.Option(help="Scope claim, e.g. 'tools:jira.*'.")] = None,
    ttl: Annotated[str | None, typer.Option(help="Lifetime, e.g. 15m (default 15m).")] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print a user token from the demo issuer of `tabard dev` (not available elsewhere).

    Use it as the subject_token of a token exchange.

    Example: tabard users token --user alice --scope 'tools:jira.*'
    """
    body = {"user": user, "audience": audience, "scope": scope, "ttl": ttl}
    try:
        result = AdminClient(server).post("/api/v1/oauth/user-tokens", body)
    except Invalid as exc:
        if "tabard dev" in exc.message:
            raise Invalid("no demo user issuer here: it exists only under `tabard dev`"
                          ) from None
        raise
    if json_out:
        print_json(result)
    else:
        typer.echo(result["token"])


@clients_app.command("list")
def clients_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List registered clients.

    Example: tabard oauth clients list --json
    """
    rows: list[dict[str, Any]] = AdminClient(server).get("/api/v1/oauth/clients")
    if json_out:
        print_json(rows)
        return
    print_table(["client id", "name", "auth", "grant types", "scope", "created"],
                [[r["client_id"], r["client_name"], r["auth_method"],
                  ", ".join(g.rsplit(":", 1)[-1] for g in r["grant_types"]), r["scope"],
                  when(r["created_at"])] for r in rows])


@clients_app.command("register")
def clients_register(
    name: Annotated[str, typer.Option(help="Client name.")],
    jwks_file: Annotated[Path, typer.Option("--jwks-file", help="JSON file with the client's "
                                            "public JWKS (private_key_jwt).")],
    scope: Annotated[str | None, typer.Option(help="Widest scope the client may get.")] = None,
    grant_type: Annotated[list[str] | None, typer.Option(
        "--grant-type", help="token-exchange and/or jwt-bearer (default token-exchange).")
    ] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a private_key_jwt client (RFC 7591, with the admin token as initial access
    token). Agents register themselves with their JWT-SVID as software statement.

    Example: tabard oauth clients register --name ci --jwks-file ci-jwks.json
    """
    try:
        jwks = json.loads(jwks_file.read_text())
    except (OSError, ValueError) as exc:
        raise Invalid(f"--jwks-file: {exc}") from None
    grants = [g if g.startswith("urn:") else f"urn:ietf:params:oauth:grant-type:{g}"
              for g in (grant_type or ["token-exchange"])]
    body: dict[str, Any] = {"client_name": name, "token_endpoint_auth_method": "private_key_jwt",
                            "jwks": jwks, "grant_types": grants}
    if scope is not None:
        body["scope"] = scope
    client = AdminClient(server)
    token = os.environ.get("TABARD_ADMIN_TOKEN") or ""
    response = httpx.post(f"{client.server}/oauth/register", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 201:
        try:
            err = response.json()
            detail = f"{err.get('error')}: {err.get('error_description')}"
        except ValueError:
            detail = response.reason_phrase
        raise (Invalid if response.status_code == 400 else TabardError)(
            f"{detail} (HTTP {response.status_code})")
    result = response.json()
    if json_out:
        print_json(result)
        return
    print_fields({"client id": result["client_id"], "name": result["client_name"],
                  "grant types": ", ".join(result["grant_types"]),
                  "scope": result.get("scope")})


@clients_app.command("delete")
def clients_delete(
    client_id: Annotated[str, typer.Argument(help="The client ID (or SPIFFE ID).")],
    server: ServerOpt = None,
) -> None:
    """Delete a registered client.

    Example: tabard oauth clients delete tc_3kq9...
    """
    AdminClient(server).delete(f"/api/v1/oauth/clients/{quote(client_id, safe='')}")
    console.print(f"deleted {client_id}", markup=False)


def _chain(act: dict[str, Any] | None) -> list[str]:
    out: list[str] = []
    while isinstance(act, dict):
        out.append(str(act.get("sub")))
        act = act.get("act")
    return out


@oauth_app.command("introspect")
def introspect(token: TokenArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Show what a token grants and its whole delegation chain (RFC 7662).

    Example: tabard oauth introspect "$TOKEN"
    """
    result: dict[str, Any] = _form_post(server, "/oauth/introspect", {"token": token}).json()
    if json_out:
        print_json(result)
        return
    if not result.get("active"):
        console.print("inactive (unknown, expired or revoked)")
        return
    chain = _chain(result.get("act"))
    print_fields({
        "active": "yes", "subject": result.get("sub"), "client": result.get("client_id"),
        "audience": result.get("aud"), "scope": result.get("scope", "(unrestricted)"),
        "acting now": chain[0] if chain else "-",
        "earlier actors": " <- ".join(chain[1:]) or "-",
        "agent checksum": (result.get("agent_proof") or {}).get("agent_checksum"),
        "certificate bound": "yes" if result.get("cnf") else "no",
        "expires": when(_iso(result.get("exp"))), "jti": result.get("jti"),
    })


def _iso(value: Any) -> str | None:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value, UTC).isoformat() if isinstance(value, int) else None


@oauth_app.command("revoke")
def revoke(token: TokenArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Revoke a token and every token exchanged from it (RFC 7009).

    Example: tabard oauth revoke "$TOKEN"
    """
    _form_post(server, "/oauth/revoke", {"token": token})
    if json_out:
        print_json({"revoked": True})
    else:
        console.print("revoked (with the tokens exchanged from it)")


def register(app: typer.Typer) -> None:
    users_app.command("token")(users_token)
    app.add_typer(oauth_app, name="oauth")
