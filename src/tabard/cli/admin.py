"""``tabard config`` and ``tabard admin-token``: operating tabard itself."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import ConfigOpt, DataDirOpt, JsonOpt, ServerOpt
from tabard.cli.output import console, print_json, print_table, when
from tabard.config import load_settings

config_app = typer.Typer(help="tabard's own configuration.", no_args_is_help=True)
token_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)


@config_app.command("show")
def config_show(config: ConfigOpt = None, data_dir: DataDirOpt = None,
                json_out: JsonOpt = False) -> None:
    """Print the effective configuration (file + TABARD_* environment), secrets masked.

    Example: TABARD_TRUST_DOMAIN=example.org tabard config show --json
    """
    settings = load_settings(config)
    if data_dir is not None:
        settings = settings.with_overrides(data_dir=data_dir)
    data = settings.masked()
    if json_out:
        print_json(data)
        return
    rows: list[list[Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows.extend([f"{key}.{k}", v] for k, v in value.items())
        else:
            rows.append([key, value])
    print_table(["setting", "value"], rows)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A name saying who or what uses the token.")],
    local: Annotated[bool, typer.Option(
        "--local", help="Write straight into the database under --data-dir (recovery, when "
        "no admin token is left).")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an admin token and print it once.

    Example: tabard admin-token create ci-pipeline
    """
    if local:
        from tabard.app import open_admin_tokens

        settings = load_settings(config)
        if data_dir is not None:
            settings = settings.with_overrides(data_dir=data_dir)
        issued = open_admin_tokens(settings).create(name)
        result = {"id": issued.record.id, "name": name, "token": issued.token}
    else:
        result = AdminClient(server).post("/api/v1/admin-tokens", {"name": name})
    if json_out:
        print_json({"id": result["id"], "name": result["name"], "token": result["token"]})
        return
    console.print(f"admin token {result['name']} ({result['id']}), shown once:")
    typer.echo(result["token"])


@token_app.command("list")
def token_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List admin tokens (names and use, never the tokens).

    Example: tabard admin-token list
    """
    rows = AdminClient(server).get("/api/v1/admin-tokens")
    if json_out:
        print_json(rows)
        return
    print_table(["id", "name", "created", "last used", "revoked"],
                [[r["id"], r["name"], when(r["created_at"]), when(r["last_used_at"]),
                  when(r["revoked_at"])] for r in rows])


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="Token id.")],
                 server: ServerOpt = None) -> None:
    """Revoke an admin token at once.

    Example: tabard admin-token revoke 6d1c2a0e-...
    """
    AdminClient(server).delete(f"/api/v1/admin-tokens/{token_id}")
    console.print(f"revoked {token_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.add_typer(token_app, name="admin-token")
