"""The inventory use cases of discovery: import rows from a source, list records with their
posture. The registry keeps the records (:class:`~tabard.registry.InventoryService`); this
layer turns raw rows into records and judges them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from tabard.clock import Clock
from tabard.discovery.files import RowError
from tabard.discovery.posture import AssessedNhi, PostureFlag, assess
from tabard.discovery.rows import DEFAULT_SOURCE, canonical_field, is_blank, validate_row
from tabard.registry import (
    MAX_INVENTORY_PAGE,
    InventoryQuery,
    InventoryService,
    NhiSpec,
    check_source,
)

__all__ = ["MAX_IMPORT_BATCH", "MAX_IMPORT_BATCH_BYTES", "ImportReport", "InventoryDiscovery"]

MAX_IMPORT_BATCH = 1000
"""Rows per import request."""
MAX_IMPORT_BATCH_BYTES = 900_000
"""Encoded rows per import request: under the server's 1 MiB body limit with room to spare."""


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of one batch. ``imported`` counts rows stored; ``created`` and ``updated``
    count records (two rows with one key are one record). Errors carry the row's position in
    the batch, from 1."""

    received: int
    imported: int
    created: int
    updated: int
    skipped: int
    errors: tuple[RowError, ...] = ()
    ignored_fields: tuple[str, ...] = ()

    @property
    def failed(self) -> int:
        return len({e.row for e in self.errors})


class InventoryDiscovery:
    def __init__(self, inventory: InventoryService, clock: Clock) -> None:
        self._inventory = inventory
        self._clock = clock

    def import_rows(self, rows: Sequence[object], *, default_source: str | None = None,
                    ) -> ImportReport:
        """Validate each row on its own and store the good ones in one transaction; a bad row
        is reported and never stops the others. Blank rows are skipped."""
        source = check_source((default_source or DEFAULT_SOURCE).strip().lower())
        specs: list[NhiSpec] = []
        errors: list[RowError] = []
        ignored: set[str] = set()
        skipped = 0
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                errors.append(RowError(number, "", "a row must be a JSON object"))
                continue
            ignored.update(k for k in row if isinstance(k, str) and canonical_field(k) is None)
            if is_blank(row):
                skipped += 1
                continue
            result = validate_row(row, default_source=source)
            if isinstance(result, NhiSpec):
                specs.append(result)
            else:
                errors.extend(RowError(number, e.field, e.message) for e in result)
        stored = self._inventory.upsert(specs)
        return ImportReport(received=len(rows), imported=len(specs), created=stored.created,
                            updated=stored.updated, skipped=skipped, errors=tuple(errors),
                            ignored_fields=tuple(sorted(ignored)))

    def list(self, query: InventoryQuery, flags: Collection[PostureFlag] = (),
             ) -> list[AssessedNhi]:
        """Records matching ``query`` that show every flag in ``flags``, judged now.

        Flags depend on the time, so they are filtered here, one page of the store at a time,
        until ``query.limit`` records are found or the store has no more.
        """
        now = self._clock.now()
        wanted = frozenset(flags)
        if not wanted:
            return [AssessedNhi(r, assess(r, now)) for r in self._inventory.list(query)]
        found: list[AssessedNhi] = []
        page = replace(query, limit=MAX_INVENTORY_PAGE)
        while True:
            records = self._inventory.list(page)
            for record in records:
                record_flags = assess(record, now)
                if wanted.issubset(record_flags):
                    found.append(AssessedNhi(record, record_flags))
                    if len(found) == query.limit:
                        return found
            if len(records) < page.limit:
                return found
            page = replace(page, after=records[-1].id)

    def get(self, record_id: str) -> AssessedNhi:
        record = self._inventory.get(record_id)
        return AssessedNhi(record, assess(record, self._clock.now()))

