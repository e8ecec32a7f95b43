"""Entry point: builds the command tree and turns every failure into a one-line message.

Exit codes: 0 success; 1 the operation failed (server unreachable, not found, refused);
2 bad input (a usage error, an invalid value, a 400 from the server).
"""

from __future__ import annotations

import sys

import typer

# Typer vendors Click and, with standalone_mode=False, raises its copies of Click's errors.
from typer._click import exceptions as click_errors

from tabard.cli import admin, authority, daemons, node, registry
from tabard.cli import agents as agents_cli
from tabard.cli import audit as audit_cli
from tabard.cli import directory as directory_cli
from tabard.cli import gateway as gateway_cli
from tabard.cli import inventory as inventory_cli
from tabard.cli import kill as kill_cli
from tabard.cli import oauth as oauth_cli
from tabard.cli import policy as policy_cli
from tabard.cli import secrets as secrets_cli
from tabard.cli.output import err_console
from tabard.errors import Invalid, TabardError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tabard",
    help="tabard: identity for AI agents and every other non-human identity.\n\n"
    "Example: tabard dev   (server on SQLite under ./.tabard, prints how to connect)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
daemons.register(app)
authority.register(app)
admin.register(app)
registry.register(app)
node.register(app)
agents_cli.register(app)
directory_cli.register(app)
inventory_cli.register(app)
oauth_cli.register(app)
policy_cli.register(app)
secrets_cli.register(app)
audit_cli.register(app)
gateway_cli.register(app)
kill_cli.register(app)


def main(argv: list[str] | None = None) -> None:
    try:
        code = app(args=argv, prog_name="tabard", standalone_mode=False)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        err_console.print(f"error: {exc.format_message()}{hint}", markup=False)
        sys.exit(2)
    except click_errors.ClickException as exc:
        err_console.print(f"error: {exc.format_message()}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except TabardError as exc:
        err_console.print(f"error: {exc.message}", markup=False)
        sys.exit(2 if isinstance(exc, Invalid) else 1)
    # without standalone mode, Click returns the code of a typer.Exit instead of exiting
    sys.exit(code if isinstance(code, int) else 0)
