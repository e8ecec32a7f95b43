"""One import row → one :class:`~tabard.registry.NhiSpec`, or every reason it is refused.

A row is a mapping of field names to values, as a CSV line under its header or an object of
a JSON array gives it. Field names are matched without regard to case, spaces or hyphens
(``Last Used`` is ``last_used``) and a few aliases are accepted:

=================  ====================================================================
field              value
=================  ====================================================================
``kind``           ``service_account``, ``api_key``, ``certificate``, ``oauth_client``,
                   ``other`` (alias ``type``)
``name``           required
``source``         system the record comes from; default: the import's source
``external_id``    the source's id for it; default: ``name``. Unique per source
``owner``          user name; empty means nobody
``created_at``     ISO 8601 date or date-time, UTC when no offset (alias ``created``)
``last_used_at``   likewise (alias ``last_used``)
``expires_at``     likewise (aliases ``expires``, ``expiry``)
``privileges``     JSON list of strings, or one string separated by ``;`` (alias
                   ``privilege``)
``notes``          free text (alias ``note``)
=================  ====================================================================

Other fields are ignored and named back to the caller, so a misspelt column shows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from tabard.registry import InvalidNhiError, NhiKind, NhiSpec

__all__ = ["DEFAULT_SOURCE", "FIELDS", "FieldError", "canonical_field", "is_blank",
           "validate_row"]

DEFAULT_SOURCE = "manual"
FIELDS = ("kind", "name", "source", "external_id", "owner", "created_at", "last_used_at",
          "expires_at", "privileges", "notes")
_ALIASES = {
    **{f: f for f in FIELDS},
    "type": "kind",
    "created": "created_at",
    "last_used": "last_used_at",
    "expires": "expires_at",
    "expiry": "expires_at",
    "privilege": "privileges",
    "note": "notes",
}
_SEPARATORS = re.compile(r"[\s-]+")
_PRIVILEGE_SPLIT = re.compile(r"[;\n]")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@functools.lru_cache(maxsize=1024)
def canonical_field(name: str) -> str | None:
    """The field a column or key stands for, or ``None`` when it is not one. Cached: every
    row of a file repeats the same few names."""
    return _ALIASES.get(_SEPARATORS.sub("_", name.strip().lower()))


def is_blank(values: Mapping[str, object]) -> bool:
    """A row with nothing in it (an empty CSV line, ``{}``): skipped, not an error."""
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in values.values())


def _text(value: object) -> str | None:
    """A text value: strings and whole numbers (ids are numbers in some exports)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError("must be a string")


def _instant(value: object) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date or date-time")
    try:
        parsed = datetime.fromisoformat(value.strip())
        return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None
                else parsed.astimezone(UTC))
    except (ValueError, OverflowError):
        raise ValueError(f"{value.strip()[:40]!r} is not an ISO 8601 date or date-time "
                         "(e.g. 2026-03-01 or 2026-03-01T12:00:00Z)") from None


def _kind(value: object) -> NhiKind:
    text = _text(value)
    if text is None:
        raise ValueError("is required")
    try:
        return NhiKind(_SEPARATORS.sub("_", text.lower()))
    except ValueError:
        choices = ", ".join(k.value for k in NhiKind)
        raise ValueError(f"{text[:40]!r} is not one of {choices}") from None


def _privileges(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in _PRIVILEGE_SPLIT.split(value) if p.strip())
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return tuple(value)
    raise ValueError("must be a list of strings or a ';'-separated string")


def _convert(fields: Mapping[str, object], field: str, parse: Callable[[object], _T],
             errors: list[FieldError]) -> _T | None:
    try:
        return parse(fields.get(field))
    except ValueError as exc:
        errors.append(FieldError(field, str(exc)))
        return None


def validate_row(values: Mapping[str, object], *, default_source: str = DEFAULT_SOURCE,
                 ) -> NhiSpec | list[FieldError]:
    """The spec a row describes, or every field error found in it (conversion errors of all
    fields first, then the first rule the converted values break)."""
    fields: dict[str, object] = {}
    errors: list[FieldError] = []
    for key, value in values.items():
        name = canonical_field(key)
        if name is None:
            continue
        if name in fields:
            errors.append(FieldError(name, f"given twice (as {key!r} too)"))
        fields[name] = value
    kind = _convert(fields, "kind", _kind, errors)
    name = _convert(fields, "name", _text, errors)
    source = _convert(fields, "source", _text, errors)
    external_id = _convert(fields, "external_id", _text, errors)
    owner = _convert(fields, "owner", _text, errors)
    notes = _convert(fields, "notes", _text, errors)
    created = _convert(fields, "created_at", _instant, errors)
    last_used = _convert(fields, "last_used_at", _instant, errors)
    expires = _convert(fields, "expires_at", _instant, errors)
    privileges = _convert(fields, "privileges", _privileges, errors)
    if name is None and not any(e.field == "name" for e in errors):
        errors.append(FieldError("name", "is required"))
    if errors or kind is None or name is None:
        return errors
    try:
        return NhiSpec(
            kind=kind, name=name, source=(source or default_source).lower(),
            external_id=external_id or name, owner=owner, created_at=created,
            last_used_at=last_used, expires_at=expires, privileges=privileges or (),
            notes=notes or "",
        )
    except InvalidNhiError as exc:
        return [FieldError(exc.field, exc.reason)]
