"""Import files: a CSV file with a header line, or a JSON file holding one array of objects.

A file is read twice, both times as a stream: :meth:`ImportFile.check` reads it all to count
its rows and to refuse an unreadable file before anything is imported; :meth:`ImportFile.rows`
then yields the rows one by one so they can be sent in batches without holding the file in
memory. A row that is wrong on its own (a JSON element that is not an object, a CSV line
with more fields than the header) is yielded as a :class:`RowError` and the rows after it
still come.

Row numbers are what a person looks for: the line where the record starts in a CSV file
(the header is line 1, as in a spreadsheet) and the position in a JSON array, from 1.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from tabard.discovery.errors import UnreadableImportError

__all__ = ["ImportFile", "ImportFormat", "RowError", "SourceRow"]

_CHUNK = 1 << 16
_WHITESPACE = " \t\n\r"


class ImportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"

    @classmethod
    def for_path(cls, path: Path) -> ImportFormat:
        suffix = path.suffix.lower().lstrip(".")
        try:
            return cls(suffix)
        except ValueError:
            raise UnreadableImportError(
                f"cannot tell the format of {path.name} from its name: give --format json "
                "or --format csv") from None


@dataclass(frozen=True, slots=True)
class SourceRow:
    number: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RowError:
    """A refused row: its number, the field at fault (empty for the whole row), why."""

    row: int
    field: str
    message: str


class ImportFile:
    def __init__(self, path: Path, fmt: ImportFormat | None = None) -> None:
        self.path = path
        self.format = fmt or ImportFormat.for_path(path)

    def check(self) -> int:
        """Read the whole file; the number of rows it holds, or :class:`UnreadableImportError`."""
        return sum(1 for _ in self.rows())

    def rows(self) -> Iterator[SourceRow | RowError]:
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as stream:
                if self.format is ImportFormat.CSV:
                    yield from _csv_rows(stream)
                else:
                    yield from _json_rows(stream)
        except UnicodeDecodeError as exc:
            raise UnreadableImportError(
                f"{self.path.name} is not UTF-8 text ({exc.reason})") from None
        except csv.Error as exc:
            raise UnreadableImportError(f"{self.path.name} is not readable CSV: {exc}") from None
        except OSError as exc:
            raise UnreadableImportError(
                f"cannot read {self.path}: {exc.strerror or exc.__class__.__name__}") from None


def _csv_rows(stream: TextIO) -> Iterator[SourceRow | RowError]:
    reader = csv.reader(stream)
    header: list[str] | None = None
    while header is None:
        try:
            first = next(reader)
        except StopIteration:
            raise UnreadableImportError("the CSV file is empty: a header line is required, "
                                        "e.g. kind,name,owner,expires_at") from None
        if any(cell.strip() for cell in first):
            header = [cell.strip() for cell in first]
    seen: set[str] = set()
    for column in header:
        if column and column in seen:
            raise UnreadableImportError(f"the CSV header names column {column!r} twice")
        seen.add(column)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        if not cells:
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            yield RowError(start, "", f"{len(cells)} fields, the header has {len(header)}")
            continue
        values = {column: cell for column, cell in zip(header, cells, strict=False) if column}
        yield SourceRow(start, values)


def _json_rows(stream: TextIO) -> Iterator[SourceRow | RowError]:
    """The elements of the one top-level array, decoded one at a time from a sliding buffer."""
    decoder = json.JSONDecoder()
    buffer, pos, eof = "", 0, False

    def more() -> bool:
        nonlocal buffer, pos, eof
        if eof:
            return False
        chunk = stream.read(_CHUNK)
        if not chunk:
            eof = True
            return False
        buffer, pos = buffer[pos:] + chunk, 0
        return True

    def skip_whitespace() -> str:
        """The next significant character (not consumed), or '' at the end of the file."""
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos] in _WHITESPACE:
                pos += 1
            if pos < len(buffer):
                return buffer[pos]
            if not more():
                return ""

    if skip_whitespace() != "[":
        raise UnreadableImportError("a JSON import file holds one array of row objects, "
                                    "e.g. [{\"kind\": \"api_key\", \"name\": \"ci\"}]")
    pos += 1
    number = 0
    if skip_whitespace() == "]":
        pos += 1
    else:
        while True:
            number += 1
            skip_whitespace()
            while True:
                try:
                    value, end = decoder.raw_decode(buffer, pos)
                except json.JSONDecodeError as exc:
                    if more():
                        continue
                    raise UnreadableImportError(
                        f"row {number} is not valid JSON: {exc.msg}") from None
                # a number or literal that ends the buffer may go on in the next block
                if end == len(buffer) and more():
                    continue
                pos = end
                break
            if isinstance(value, dict):
                yield SourceRow(number, value)
            else:
                yield RowError(number, "", "a row must be a JSON object")
            separator = skip_whitespace()
            pos += 1
            if separator == "]":
                break
            if separator != ",":
                raise UnreadableImportError(
                    f"after row {number}: expected ',' or ']' in the JSON array")
    if skip_whitespace() != "":
        raise UnreadableImportError("text after the end of the JSON array")
