"""The ``tabard`` command: admin CLI and the entry point of the daemons."""

from tabard.cli.main import app, main

__all__ = ["app", "main"]
