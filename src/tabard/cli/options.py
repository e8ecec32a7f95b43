"""Options shared by many commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["ConfigOpt", "DataDirOpt", "JsonOpt", "ServerOpt"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ServerOpt = Annotated[
    str | None,
    typer.Option("--server", envvar="TABARD_SERVER_URL", show_envvar=True,
                 help="Server URL (default http://127.0.0.1:8080)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="TABARD_CONFIG", help="tabard.toml to read."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./.tabard).")
]
