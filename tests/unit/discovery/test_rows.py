"""One row → one inventory spec, or every field error in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tabard.discovery import FieldError, canonical_field, is_blank, validate_row
from tabard.registry import InvalidNhiError, NhiKind, NhiSpec


def test_a_full_csv_row() -> None:
    spec = validate_row({
        "Kind": "Service-Account", "Name": " billing ", "Source": "AWS-IAM",
        "External ID": "arn:aws:iam::1:user/billing", "Owner": "alice",
        "Created": "2025-01-02", "Last Used": "2026-01-01T10:00:00+02:00",
        "Expiry": "2026-06-01T00:00:00Z", "Privileges": "s3:Get; s3:Put;;s3:Get\nsqs:Send",
        "Notes": "synced nightly",
    })
    assert spec == NhiSpec(
        kind=NhiKind.SERVICE_ACCOUNT, name="billing", source="aws-iam",
        external_id="arn:aws:iam::1:user/billing", owner="alice",
        created_at=datetime(2025, 1, 2, tzinfo=UTC),
        last_used_at=datetime(2026, 1, 1, 8, 0, tzinfo=UTC),
        expires_at=datetime(2026, 6, 1, tzinfo=UTC),
        privileges=("s3:Get", "s3:Put", "sqs:Send"), notes="synced nightly",
    )


def test_defaults_source_external_id_owner() -> None:
    spec = validate_row({"kind": "api_key", "name": "ci", "owner": "  "})
    assert isinstance(spec, NhiSpec)
    assert (spec.source, spec.external_id, spec.owner) == ("manual", "ci", None)
    assert validate_row({"kind": "api_key", "name": "ci"}, default_source="github"
                        ).source == "github"  # type: ignore[union-attr]
    own = validate_row({"kind": "api_key", "name": "ci", "source": "vault"},
                       default_source="github")
    assert isinstance(own, NhiSpec) and own.source == "vault"


def test_json_values_lists_numbers_and_nulls() -> None:
    spec = validate_row({"type": "oauth_client", "name": "app", "external_id": 12345,
                         "privileges": ["read", "write", "read"], "owner": None,
                         "expires_at": None, "notes": None})
    assert isinstance(spec, NhiSpec)
    assert spec.external_id == "12345" and spec.privileges == ("read", "write")
    assert spec.owner is None and spec.expires_at is None and spec.notes == ""


def test_naive_times_are_utc() -> None:
    spec = validate_row({"kind": "certificate", "name": "tls", "expires": "2026-03-01 12:30"})
    assert isinstance(spec, NhiSpec)
    assert spec.expires_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-02-30", "01/02/2026",
                                   "2026-01-01T25:00"])
def test_bad_dates(value: str) -> None:
    assert validate_row({"kind": "api_key", "name": "a", "last_used": value}) == [
        FieldError("last_used_at", f"{value!r} is not an ISO 8601 date or date-time "
                   "(e.g. 2026-03-01 or 2026-03-01T12:00:00Z)")]


def test_dates_must_be_text() -> None:
    errors = validate_row({"kind": "api_key", "name": "a", "created_at": 1767225600})
    assert errors == [FieldError("created_at", "must be an ISO 8601 date or date-time")]


def test_unknown_and_missing_kind() -> None:
    errors = validate_row({"kind": "robot", "name": "a"})
    assert isinstance(errors, list) and [e.field for e in errors] == ["kind"]
    assert "'robot' is not one of service_account, api_key" in errors[0].message
    assert validate_row({"name": "a"}) == [FieldError("kind", "is required")]


def test_every_conversion_error_of_a_row_is_reported() -> None:
    errors = validate_row({"kind": "x", "created": "soon", "expires": "later",
                           "privileges": {"a": 1}, "owner": True})
    assert isinstance(errors, list)
    assert [e.field for e in errors] == ["kind", "owner", "created_at", "expires_at",
                                         "privileges", "name"]


def test_a_field_given_twice() -> None:
    errors = validate_row({"kind": "api_key", "name": "a", "expires": "2026-01-01",
                           "expiry": "2027-01-01"})
    assert errors == [FieldError("expires_at", "given twice (as 'expiry' too)")]


@pytest.mark.parametrize(("row", "field", "message"), [
    ({"name": "a", "source": "AWS IAM"}, "source", "lowercase letters"),
    ({"name": "a", "source": "-x"}, "source", "starting with a letter or digit"),
    ({"name": "n" * 256}, "name", "longer than 255"),
    ({"name": "a", "external_id": "i" * 1025}, "external_id", "longer than 1024"),
    ({"name": "a\x00b"}, "name", "control characters"),
    ({"name": "a", "created": "2026-02-01", "expires": "2026-01-01"}, "expires_at",
     "before created_at"),
    ({"name": "a", "privileges": ["p"] * 300}, "privileges", "more than 256"),
    ({"name": "a", "notes": "n" * 4097}, "notes", "longer than 4096"),
])
def test_rules_of_the_record(row: dict[str, object], field: str, message: str) -> None:
    errors = validate_row({"kind": "other", **row})
    assert isinstance(errors, list) and len(errors) == 1
    assert errors[0].field == field and message in errors[0].message


def test_notes_keep_lines_and_tabs() -> None:
    spec = validate_row({"kind": "other", "name": "a", "notes": "line 1\n\tline 2"})
    assert isinstance(spec, NhiSpec) and spec.notes == "line 1\n\tline 2"


def test_fields_aliases_and_blank_rows() -> None:
    assert canonical_field(" Last-Used ") == "last_used_at"
    assert canonical_field("expiry") == "expires_at"
    assert canonical_field("password") is None
    assert is_blank({}) and is_blank({"kind": " ", "name": None})
    assert not is_blank({"kind": "", "notes": "x"})


def test_spec_rejects_naive_times_and_normalises_offsets() -> None:
    with pytest.raises(InvalidNhiError) as info:
        NhiSpec(kind=NhiKind.API_KEY, name="a", source="s", external_id="a",
                expires_at=datetime(2026, 1, 1))
    assert info.value.field == "expires_at" and info.value.code == "invalid_nhi"
    spec = NhiSpec(kind=NhiKind.API_KEY, name="a", source="s", external_id="a",
                   expires_at=datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))))
    assert spec.expires_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert spec.expires_at.tzinfo is UTC
