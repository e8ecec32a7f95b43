"""Vault commands: ``tabard secrets put|list|show|rotate|delete|leases|revoke-leases``.

A value is read from a file or standard input (never from the command line, where it would
land in shell history and the process table), sent once, and never printed: no command
shows a value, in a table or in ``--json``.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_fields, print_json, print_table, when
from tabard.errors import Invalid

__all__ = ["register"]

MAX_VALUE_BYTES = 64 * 1024

secrets_app = typer.Typer(
    help="Secrets in tabard's vault (encrypted; values are never shown) and the leases of "
    "the credentials issued from them.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The secret's name.")]
FromFileOpt = Annotated[Path | None, typer.Option(
    "--from-file", metavar="FILE", help="Read the value from this file.")]
StdinOpt = Annotated[bool, typer.Option("--stdin", help="Read the value from standard input.")]
DescriptionOpt = Annotated[str | None, typer.Option(
    "--description", help="What the secret is for (shown in listings).")]


def _read_value(from_file: Path | None, stdin: bool) -> str:
    """The value as base64. One trailing line break (what ``echo`` and editors add) is
    dropped; anything else is kept byte for byte."""
    if (from_file is None) == (not stdin):
        raise Invalid("give the value with exactly one of --from-file FILE and --stdin")
    if from_file is not None:
        try:
            data = from_file.read_bytes()
        except OSError as exc:
            raise Invalid(f"cannot read {from_file}: {exc.strerror}") from None
    else:
        data = sys.stdin.buffer.read(MAX_VALUE_BYTES + 3)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise Invalid("the value is empty")
    if len(data) > MAX_VALUE_BYTES:
        raise Invalid(f"a secret value is limited to {MAX_VALUE_BYTES} bytes")
    return base64.b64encode(data).decode()


def _path(name: str) -> str:
    return f"/api/v1/secrets/{quote(name, safe='')}"


def _print_secret(secret: dict[str, Any], verb: str) -> None:
    console.print(f"{verb} secret {secret['name']} (version {secret['current_version']}); "
                  "the value is stored encrypted and will not be shown", markup=False)


@secrets_app.command("put")
def secrets_put(name: NameArg, from_file: FromFileOpt = None, stdin: StdinOpt = False,
                description: DescriptionOpt = None, server: ServerOpt = None,
                json_out: JsonOpt = False) -> None:
    """Store a new secret. One trailing line break of the input is dropped.

    Example: printf %s "$GITHUB_TOKEN" | tabard secrets put github-token --stdin
    """
    body = {"name": name, "value_base64": _read_value(from_file, stdin),
            "description": description or ""}
    secret = AdminClient(server).post("/api/v1/secrets", body)
    if json_out:
        print_json(secret)
    else:
        _print_secret(secret, "stored")


@secrets_app.command("rotate")
def secrets_rotate(name: NameArg, from_file: FromFileOpt = None, stdin: StdinOpt = False,
                   description: DescriptionOpt = None, server: ServerOpt = None,
                   json_out: JsonOpt = False) -> None:
    """Add a new current version of a secret. The previous version stays usable for the
    grace period (24 h by default) so requests in flight finish, then it is destroyed.

    Example: tabard secrets rotate github-token --from-file new-token.txt
    """
    body: dict[str, Any] = {"value_base64": _read_value(from_file, stdin)}
    if description is not None:
        body["description"] = description
    secret = AdminClient(server).post(_path(name) + "/rotate", body)
    if json_out:
        print_json(secret)
    else:
        _print_secret(secret, "rotated")


@secrets_app.command("list")
def secrets_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List secrets: name, current version, description, dates (never values).

    Example: tabard secrets list --json
    """
    rows: list[dict[str, Any]] = AdminClient(server).get("/api/v1/secrets")
    if json_out:
        print_json(rows)
        return
    print_table(["name", "version", "description", "created", "updated"],
                [[r["name"], r["current_version"], r["description"] or "-",
                  when(r["created_at"]), when(r["updated_at"])] for r in rows])


@secrets_app.command("show")
def secrets_show(name: NameArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Show a secret's metadata and its versions (current, previous until its grace period
    ends, destroyed) — never the value.

    Example: tabard secrets show github-token
    """
    secret: dict[str, Any] = AdminClient(server).get(_path(name))
    if json_out:
        print_json(secret)
        return
    print_fields({"name": secret["name"], "description": secret["description"] or "-",
                  "current version": secret["current_version"],
                  "created": when(secret["created_at"]), "updated": when(secret["updated_at"])})
    print_table(["version", "state", "created", "expires", "destroyed"],
                [[v["version"], v["state"], when(v["created_at"]), when(v["expires_at"]),
                  when(v["destroyed_at"])] for v in secret["versions"] or []])


@secrets_app.command("delete")
def secrets_delete(name: NameArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a secret: the ciphertext of every version is erased at once. Routes that use
    it fail until it is stored again.

    Example: tabard secrets delete github-token
    """
    AdminClient(server).delete(_path(name))
    if json_out:
        print_json({"name": name, "deleted": True})
    else:
        console.print(f"deleted secret {name}; every version is destroyed", markup=False)


@secrets_app.command("leases")
def secrets_leases(
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's leases.")
                     ] = None,
    instance: Annotated[str | None, typer.Option(
        "--instance", help="Only this agent instance's leases (its SPIFFE ID).")] = None,
    secret: Annotated[str | None, typer.Option("--secret", help="Only leases of this secret.")
                      ] = None,
    active: Annotated[bool, typer.Option("--active", help="Only leases neither revoked nor "
                                         "expired.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the leases of issued credentials (who, which route, which secret version, until
    when) — never the credentials.

    Example: tabard secrets leases --agent assistant --active
    """
    if not 1 <= limit <= 10_000:
        raise Invalid("--limit must be between 1 and 10000")
    params: dict[str, str] = {"limit": str(limit)}
    for key, value in (("agent", agent), ("agent_instance", instance), ("secret", secret)):
        if value is not None:
            params[key] = value
    if active:
        params["active"] = "true"
    rows: list[dict[str, Any]] = AdminClient(server).get("/api/v1/leases?" + urlencode(params))
    if json_out:
        print_json(rows)
        return

    def _state(r: dict[str, Any]) -> str:
        return "active" if r["active"] else ("revoked" if r["revoked_at"] else "expired")

    def _secret(r: dict[str, Any]) -> str:
        return f"{r['secret_name']} v{r['secret_version']}" if r["secret_name"] else "-"

    print_table(["lease", "provider", "route", "agent", "user", "secret", "issued", "expires",
                 "state"],
                [[r["id"], r["provider"], r["route"], r["agent"], r["user"], _secret(r),
                  when(r["issued_at"]), when(r["expires_at"]), _state(r)] for r in rows])


@secrets_app.command("revoke-leases")
def secrets_revoke_leases(
    lease: Annotated[str | None, typer.Option("--lease", help="Revoke this one lease.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Revoke every lease of this "
                                              "agent.")] = None,
    instance: Annotated[str | None, typer.Option(
        "--instance", help="Revoke every lease of this agent instance.")] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke leases: one, every lease of an agent, or every lease of one instance.

    Example: tabard secrets revoke-leases --agent assistant
    """
    if sum(v is not None for v in (lease, agent, instance)) != 1:
        raise Invalid("give exactly one of --lease, --agent and --instance")
    client = AdminClient(server)
    if lease is not None:
        revoked = client.post(f"/api/v1/leases/{quote(lease, safe='')}/revoke")
        result: dict[str, Any] = {"revoked": 1, "lease": revoked}
    else:
        body = {"agent": agent} if agent is not None else {"agent_instance": instance}
        result = client.post("/api/v1/leases/revoke", body)
    if json_out:
        print_json(result)
    else:
        console.print(f"revoked {result['revoked']} lease(s)", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app, name="secrets")
