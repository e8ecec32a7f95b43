"""Reading import files: CSV with a header, JSON arrays, row numbers, unreadable files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tabard.discovery import ImportFile, ImportFormat, RowError, SourceRow, UnreadableImportError


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def rows(path: Path, fmt: ImportFormat | None = None) -> list[SourceRow | RowError]:
    return list(ImportFile(path, fmt).rows())


def test_csv_rows_are_numbered_by_their_line_with_the_header_as_line_1(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "kind,name,notes\napi_key,a,\n\n"
                 'service_account,b,"two\nlines"\nother,c,x\n')
    got = rows(path)
    assert got == [
        SourceRow(2, {"kind": "api_key", "name": "a", "notes": ""}),
        SourceRow(4, {"kind": "service_account", "name": "b", "notes": "two\nlines"}),
        SourceRow(6, {"kind": "other", "name": "c", "notes": "x"}),
    ]
    assert ImportFile(path).check() == 3


def test_csv_header_is_trimmed_short_rows_are_padded_long_rows_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "\ufeff kind , name,\napi_key\napi_key,a,,\n"
                 "api_key,b,c,extra\n")
    got = rows(path)
    assert got[0] == SourceRow(2, {"kind": "api_key"})
    assert got[1] == SourceRow(3, {"kind": "api_key", "name": "a"})
    assert got[2] == RowError(4, "", "4 fields, the header has 3")


def test_csv_blank_and_comma_only_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "\n\nkind,name\n,\n\napi_key,a\n")
    assert rows(path) == [SourceRow(4, {"kind": "", "name": ""}),
                          SourceRow(6, {"kind": "api_key", "name": "a"})]


@pytest.mark.parametrize(("text", "message"), [
    ("", "header line is required"),
    ("\n \n", "header line is required"),
    ("kind,name,kind\napi_key,a,b\n", "column 'kind' twice"),
])
def test_unreadable_csv(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UnreadableImportError, match=message):
        ImportFile(write(tmp_path, "in.csv", text)).check()


def test_json_array_of_objects(tmp_path: Path) -> None:
    data = [{"kind": "api_key", "name": "a"}, {}, 7, {"kind": "other", "name": "z" * 70_000},
            None, [1], {"name": "last", "n": 12345678901234567890}]
    got = rows(write(tmp_path, "in.json", json.dumps(data, indent=1)))
    assert got == [
        SourceRow(1, {"kind": "api_key", "name": "a"}),
        SourceRow(2, {}),
        RowError(3, "", "a row must be a JSON object"),
        SourceRow(4, {"kind": "other", "name": "z" * 70_000}),
        RowError(5, "", "a row must be a JSON object"),
        RowError(6, "", "a row must be a JSON object"),
        SourceRow(7, {"name": "last", "n": 12345678901234567890}),
    ]


def test_json_numbers_split_across_read_blocks_stay_whole(tmp_path: Path) -> None:
    # the first element fills the first 64 KiB block up to the middle of the number
    head = '[{"name": "' + "x" * (65_536 - 18) + '"}, '
    text = head + "1234567890, {}]"
    got = rows(write(tmp_path, "in.json", text))
    assert [type(r) for r in got] == [SourceRow, RowError, SourceRow]
    assert ImportFile(tmp_path / "in.json").check() == 3


@pytest.mark.parametrize("text", ["[]", " [ ] \n", "\ufeff[]"])
def test_empty_json_array(tmp_path: Path, text: str) -> None:
    assert rows(write(tmp_path, "in.json", text)) == []


@pytest.mark.parametrize(("text", "message"), [
    ("", "one array of row objects"),
    ('{"kind": "api_key"}', "one array of row objects"),
    ('[{"kind": "api_key"}, {"kind": ]', "row 2 is not valid JSON"),
    ('[{"kind": "api_key"} {"kind": "other"}]', "after row 1: expected"),
    ('[{"kind": "api_key"}', "after row 1: expected"),
    ("[{}] []", "text after the end"),
])
def test_unreadable_json(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "in.json", text)
    with pytest.raises(UnreadableImportError, match=message):
        ImportFile(path).check()


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImportError, match="cannot read"):
        ImportFile(tmp_path / "missing.csv").check()
    with pytest.raises(UnreadableImportError, match="cannot read"):
        ImportFile(tmp_path, ImportFormat.CSV).check()
    latin1 = write(tmp_path, "latin1.csv", "kind,name\napi_key,caf\xe9\n".encode("latin-1"))
    with pytest.raises(UnreadableImportError, match="not UTF-8"):
        ImportFile(latin1).check()


def test_format_from_the_name_or_given(tmp_path: Path) -> None:
    assert ImportFile(tmp_path / "a.JSON").format is ImportFormat.JSON
    assert ImportFile(tmp_path / "a.csv").format is ImportFormat.CSV
    with pytest.raises(UnreadableImportError, match="--format"):
        ImportFile(tmp_path / "export.txt")
    path = write(tmp_path, "export.txt", "kind,name\napi_key,a\n")
    assert rows(path, ImportFormat.CSV) == [SourceRow(2, {"kind": "api_key", "name": "a"})]
