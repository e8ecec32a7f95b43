"""Inventory commands: import non-agent NHIs from files, list them with posture flags."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, err_console, print_json, print_table, when
from tabard.discovery import (
    MAX_IMPORT_BATCH,
    MAX_IMPORT_BATCH_BYTES,
    ImportFile,
    ImportFormat,
    PostureFlag,
    RowError,
    parse_flags,
)
from tabard.errors import Invalid, TabardError
from tabard.registry import NhiKind, check_source

__all__ = ["register"]

inventory_app = typer.Typer(
    help="NHI inventory: service accounts, API keys, certificates and OAuth clients that "
    "tabard does not issue, with posture flags.",
    no_args_is_help=True,
)

MAX_ERRORS_SHOWN = 200


@dataclass
class _Outcome:
    rows: int
    imported: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_fields: set[str] = field(default_factory=set)

    @property
    def failed(self) -> int:
        return len({e.row for e in self.errors})

    def as_json(self, file: ImportFile) -> dict[str, Any]:
        return {
            "file": str(file.path), "format": file.format.value, "rows": self.rows,
            "imported": self.imported, "created": self.created, "updated": self.updated,
            "skipped": self.skipped, "failed": self.failed,
            "errors": [{"row": e.row, "field": e.field, "message": e.message}
                       for e in sorted(self.errors, key=lambda e: e.row)],
            "ignored_fields": sorted(self.ignored_fields),
        }


class _Batches:
    """Rows on their way to the server, sent when a batch reaches the row or byte limit.

    One batch is in flight while the next is read, never two: the server then stores them
    in file order, so of two rows with one key the later wins, as within a batch.
    """

    def __init__(self, client: AdminClient, path: str, outcome: _Outcome,
                 on_done: Callable[[int], None]) -> None:
        self._client, self._path, self._outcome, self._on_done = client, path, outcome, on_done
        self._rows: list[dict[str, Any]] = []
        self._numbers: list[int] = []
        self._bytes = 2
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inventory-import")
        self._in_flight: tuple[Future[Any], list[int]] | None = None

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sender.shutdown(wait=True, cancel_futures=True)

    def add(self, number: int, values: dict[str, Any]) -> None:
        size = len(json.dumps(values, ensure_ascii=False).encode()) + 1
        if size + 2 > MAX_IMPORT_BATCH_BYTES:
            self._outcome.errors.append(RowError(number, "", "the row is too large to send"))
            self._on_done(1)
            return
        if len(self._rows) == MAX_IMPORT_BATCH or self._bytes + size > MAX_IMPORT_BATCH_BYTES:
            self._send()
        self._rows.append(values)
        self._numbers.append(number)
        self._bytes += size

    def finish(self) -> None:
        """Send what is left and wait for every answer."""
        self._send()
        self._wait()

    def _send(self) -> None:
        self._wait()
        if not self._rows:
            return
        future = self._sender.submit(self._client.request, "POST", self._path, json=self._rows)
        self._in_flight = (future, self._numbers)
        self._rows, self._numbers, self._bytes = [], [], 2

    def _wait(self) -> None:
        if self._in_flight is None:
            return
        future, numbers = self._in_flight
        self._in_flight = None
        report = future.result()
        o = self._outcome
        o.imported += report["imported"]
        o.created += report["created"]
        o.updated += report["updated"]
        o.skipped += report["skipped"]
        o.ignored_fields.update(report["ignored_fields"])
        o.errors.extend(RowError(numbers[e["row"] - 1], e["field"], e["message"])
                        for e in report["errors"])
        self._on_done(len(numbers))


def _progress() -> Progress:
    return Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("rows"), TimeElapsedColumn(), console=err_console,
                    transient=True)


def _print_report(file: ImportFile, outcome: _Outcome) -> None:
    if outcome.errors:
        shown = sorted(outcome.errors, key=lambda e: e.row)[:MAX_ERRORS_SHOWN]
        print_table(["row", "field", "error"], [[e.row, e.field or "-", e.message]
                                                for e in shown],
                    title=f"{outcome.failed} rows not imported")
        if len(outcome.errors) > len(shown):
            console.print(f"... and {len(outcome.errors) - len(shown)} more errors "
                          "(--json lists them all)")
    console.print(
        f"imported {outcome.imported} of {outcome.rows} rows from {file.path.name} "
        f"({outcome.created} new, {outcome.updated} updated); {outcome.failed} failed; "
        f"{outcome.skipped} blank skipped", markup=False)
    if outcome.ignored_fields:
        err_console.print("warning: fields ignored (not inventory fields): "
                          + ", ".join(sorted(outcome.ignored_fields)), markup=False)


_IMPORT_HELP = (
    "Import NHIs from a CSV or JSON file; importing again updates records (the key is source "
    "plus external_id), never duplicates them.\n\n"
    "Fields: kind (service_account, api_key, certificate, oauth_client, other), name, source, "
    "external_id (default: name), owner (empty: nobody), created_at, last_used_at, expires_at "
    "(ISO 8601, UTC when no offset), privileges (';'-separated in CSV), notes.\n\n"
    "Each refused row is reported by number: its line in a CSV file (the header is line 1), "
    "its position in a JSON array (from 1). Bad rows never stop the good ones.\n\n"
    "Exit codes: 0 every row imported; 1 some rows were refused (the others are imported); "
    "2 the file cannot be read (nothing is imported).\n\n"
    "Example: tabard inventory import service-accounts.csv --source aws-iam"
)


@inventory_app.command("import", help=_IMPORT_HELP)
def inventory_import(
    file: Annotated[Path, typer.Argument(
        metavar="FILE", help="CSV file with a header line, or JSON file holding one array of "
        "row objects.")],
    fmt: Annotated[ImportFormat | None, typer.Option(
        "--format", case_sensitive=False,
        help="json or csv (default: from the file name).")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Source of the rows that do not name one, e.g. aws-iam "
        "(default: manual).")] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    if source is not None:
        source = check_source(source.strip().lower())
    import_file = ImportFile(file, fmt)
    total = import_file.check()
    outcome = _Outcome(rows=total)
    client = AdminClient(server)
    path = "/api/v1/inventory/import" + (f"?{urlencode({'source': source})}" if source else "")
    try:
        with _progress() as progress:
            task = progress.add_task("import", total=total)

            def done(rows: int) -> None:
                progress.advance(task, rows)

            with _Batches(client, path, outcome, done) as batches:
                for row in import_file.rows():
                    if isinstance(row, RowError):
                        outcome.errors.append(row)
                        done(1)
                    else:
                        batches.add(row.number, row.values)
                batches.finish()
    except TabardError:
        if outcome.imported:
            err_console.print(f"stopped: {outcome.imported} rows were imported before the "
                              "error", markup=False)
        raise
    if json_out:
        print_json(outcome.as_json(import_file))
    else:
        _print_report(import_file, outcome)
    if outcome.errors:
        # SystemExit, not typer.Exit: under standalone_mode=False Click turns typer.Exit into
        # a return value, which the entry point does not read.
        sys.exit(1)


def _day(value: str | None) -> str:
    return when(value)[:10]


@inventory_app.command("list")
def inventory_list(
    flag: Annotated[list[str] | None, typer.Option(
        "--flag", help="Only records with this posture flag (repeatable; all must hold): "
        + ", ".join(f.value for f in PostureFlag) + ".")] = None,
    kind: Annotated[NhiKind | None, typer.Option(
        "--kind", case_sensitive=False, help="Only records of this kind.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this user's records.")
                     ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source's records.")
                      ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, in first-import order.")
                     ] = 1000,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List inventory records with their posture flags (no_owner, expired, long_lived:
    over 90 days or no expiry, unused_30d).

    Example: tabard inventory list --flag no_owner --kind api_key
    """
    flags = sorted(parse_flags(flag or ()))
    if not 1 <= limit <= 10_000:
        raise Invalid("--limit must be between 1 and 10000")
    params: list[tuple[str, str]] = [("limit", str(limit))]
    params += [("flag", f.value) for f in flags]
    if kind is not None:
        params.append(("kind", kind.value))
    if owner is not None:
        params.append(("owner", owner))
    if source is not None:
        params.append(("source", source.strip().lower()))
    rows: list[dict[str, Any]] = AdminClient(server).get(
        "/api/v1/inventory?" + urlencode(params))
    if json_out:
        print_json(rows)
        return
    print_table(
        ["kind", "name", "source", "owner", "last used", "expires", "flags"],
        [[r["kind"], r["name"], r["source"], r["owner"], _day(r["last_used_at"]),
          _day(r["expires_at"]), "\n".join(r["flags"]) or "-"] for r in rows],
    )
    if len(rows) == limit:
        err_console.print(f"showing the first {limit}; raise --limit for more")


def register(app: typer.Typer) -> None:
    app.add_typer(inventory_app, name="inventory")
