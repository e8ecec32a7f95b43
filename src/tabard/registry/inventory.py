"""The NHI inventory: non-agent identities (service accounts, API keys, certificates, OAuth
clients) that tabard does not issue but must still account for (ARCHITECTURE §4).

A record is known by ``(source, external_id)``: the system it came from and that system's
own identifier for it. Writing a record with a key that exists replaces the stored facts and
keeps the record's id and ``first_seen_at``, so importing the same export twice updates and
never duplicates. Posture (no owner, expired, long-lived, unused) is judged from these facts
at read time by :mod:`tabard.discovery`; nothing time-dependent is stored.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from tabard.clock import Clock
from tabard.errors import Invalid, NotFound
from tabard.registry.instances import new_ulid

__all__ = [
    "MAX_INVENTORY_PAGE",
    "InvalidNhiError",
    "InventoryQuery",
    "InventoryService",
    "InventoryStore",
    "NhiKind",
    "NhiNotFoundError",
    "NhiRecord",
    "NhiSpec",
    "UpsertResult",
    "check_source",
]

MAX_NAME = 255
MAX_SOURCE = 64
MAX_EXTERNAL_ID = 1024
MAX_OWNER = 255
MAX_PRIVILEGES = 256
MAX_PRIVILEGE = 512
MAX_NOTES = 4096
MAX_INVENTORY_PAGE = 10_000

_SOURCE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _ulid_value(text: str) -> int:
    value = 0
    for char in text:
        value = value << 5 | _CROCKFORD.index(char)
    return value


def _ulid_text(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class InvalidNhiError(Invalid):
    """An inventory field that breaks a rule; ``field`` names it for per-row reports."""

    code = "invalid_nhi"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NhiNotFoundError(NotFound):
    code = "nhi_not_found"


class NhiKind(StrEnum):
    SERVICE_ACCOUNT = "service_account"
    API_KEY = "api_key"
    CERTIFICATE = "certificate"
    OAUTH_CLIENT = "oauth_client"
    OTHER = "other"


def _text(field: str, value: object, limit: int, *, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidNhiError(field, "must be a string")
    if len(value) > limit:
        raise InvalidNhiError(field, f"longer than {limit} characters")
    checked = value.replace("\n", "").replace("\t", "") if multiline else value
    if _CONTROL.search(checked):
        raise InvalidNhiError(field, "contains control characters")
    return value


def check_source(value: object) -> str:
    """A source name: short, lowercase, safe in URLs and file names (``aws-iam``)."""
    if not isinstance(value, str) or not _SOURCE.fullmatch(value):
        raise InvalidNhiError("source", "must be 1-64 lowercase letters, digits, '.', '_' or "
                              "'-', starting with a letter or digit")
    return value


def _instant(field: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidNhiError(field, "must be a timezone-aware date and time")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class NhiSpec:
    """The facts a source reports about one NHI, validated on construction.

    ``owner`` is a user name, or ``None`` when nobody is accountable; privileges keep their
    order with duplicates dropped.
    """

    kind: NhiKind
    name: str
    source: str
    external_id: str
    owner: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    privileges: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        try:
            kind = NhiKind(self.kind)
        except ValueError:
            choices = ", ".join(k.value for k in NhiKind)
            raise InvalidNhiError("kind", f"must be one of {choices}") from None
        name = _text("name", self.name, MAX_NAME).strip()
        if not name:
            raise InvalidNhiError("name", "is required")
        check_source(self.source)
        external_id = _text("external_id", self.external_id, MAX_EXTERNAL_ID).strip()
        if not external_id:
            raise InvalidNhiError("external_id", "is required")
        owner = None
        if self.owner is not None:
            owner = _text("owner", self.owner, MAX_OWNER).strip() or None
        created = _instant("created_at", self.created_at)
        expires = _instant("expires_at", self.expires_at)
        if created is not None and expires is not None and expires < created:
            raise InvalidNhiError("expires_at", "is before created_at")
        if not isinstance(self.privileges, tuple | list):
            raise InvalidNhiError("privileges", "must be a list of strings")
        if len(self.privileges) > MAX_PRIVILEGES:
            raise InvalidNhiError("privileges", f"more than {MAX_PRIVILEGES} entries")
        privileges: dict[str, None] = {}
        for privilege in self.privileges:
            text = _text("privileges", privilege, MAX_PRIVILEGE).strip()
            if text:
                privileges[text] = None
        set_ = object.__setattr__
        set_(self, "kind", kind)
        set_(self, "name", name)
        set_(self, "external_id", external_id)
        set_(self, "owner", owner)
        set_(self, "created_at", created)
        set_(self, "last_used_at", _instant("last_used_at", self.last_used_at))
        set_(self, "expires_at", expires)
        set_(self, "privileges", tuple(privileges))
        set_(self, "notes", _text("notes", self.notes, MAX_NOTES, multiline=True))

    @property
    def key(self) -> tuple[str, str]:
        """The identity of the record across imports."""
        return (self.source, self.external_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class NhiRecord:
    """A stored inventory record: the source's facts plus tabard's own bookkeeping."""

    id: str
    spec: NhiSpec
    first_seen_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryQuery:
    """Exact-match filters; records come ordered by id (first import order), after ``after``."""

    kind: NhiKind | None = None
    owner: str | None = None
    source: str | None = None
    after: str | None = None
    limit: int = 1000

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not 1 <= self.limit <= MAX_INVENTORY_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_INVENTORY_PAGE}")


@dataclass(frozen=True, slots=True)
class UpsertResult:
    created: int
    updated: int


class InventoryStore(Protocol):
    """Inventory records, unique by ``(source, external_id)``."""

    def upsert_many(self, records: Sequence[NhiRecord]) -> UpsertResult:
        """In one transaction, insert each record, or, when its key exists, replace the
        stored spec and ``updated_at`` (keeping id and ``first_seen_at``). The keys in
        ``records`` are distinct."""
        ...

    def get(self, record_id: str) -> NhiRecord | None: ...

    def list(self, query: InventoryQuery) -> list[NhiRecord]: ...


class InventoryService:
    """Writes and reads of inventory records; time comes from the injected clock."""

    def __init__(self, store: InventoryStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._last_id = 0

    def upsert(self, specs: Sequence[NhiSpec]) -> UpsertResult:
        """Store ``specs``; of two with one key, the later wins (it is the newer line of the
        same export)."""
        latest: dict[tuple[str, str], NhiSpec] = {}
        for spec in specs:
            latest.pop(spec.key, None)
            latest[spec.key] = spec
        if not latest:
            return UpsertResult(0, 0)
        now = self._clock.now()
        first = self._next_ids(now, len(latest))
        records = [NhiRecord(id=_ulid_text(first + i), spec=spec, first_seen_at=now,
                             updated_at=now) for i, spec in enumerate(latest.values())]
        return self._store.upsert_many(records)

    def _next_ids(self, now: datetime, count: int) -> int:
        """The first of ``count`` consecutive ULIDs, all above every id this service handed
        out before: records list in import order even within one millisecond."""
        with self._lock:
            first = max(_ulid_value(new_ulid(now)), self._last_id + 1)
            self._last_id = first + count - 1
        return first

    def get(self, record_id: str) -> NhiRecord:
        record = self._store.get(record_id)
        if record is None:
            raise NhiNotFoundError(f"no inventory record with id {record_id!r}")
        return record

    def list(self, query: InventoryQuery) -> list[NhiRecord]:
        return self._store.list(query)
