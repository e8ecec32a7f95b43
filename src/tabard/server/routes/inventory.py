"""NHI inventory (admin): import rows from a source in batches; list records with posture."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel

from tabard.discovery import MAX_IMPORT_BATCH, AssessedNhi, ImportReport, parse_flags
from tabard.registry import MAX_INVENTORY_PAGE, InventoryQuery, NhiKind
from tabard.server.deps import Admin, Services

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])


class NhiView(BaseModel):
    id: str
    kind: str
    name: str
    source: str
    external_id: str
    owner: str | None
    created_at: datetime | None
    last_used_at: datetime | None
    expires_at: datetime | None
    privileges: list[str]
    notes: str
    first_seen_at: datetime
    updated_at: datetime
    flags: list[str]

    @classmethod
    def of(cls, assessed: AssessedNhi) -> NhiView:
        r, s = assessed.record, assessed.record.spec
        return cls(
            id=r.id, kind=s.kind.value, name=s.name, source=s.source,
            external_id=s.external_id, owner=s.owner, created_at=s.created_at,
            last_used_at=s.last_used_at, expires_at=s.expires_at,
            privileges=list(s.privileges), notes=s.notes, first_seen_at=r.first_seen_at,
            updated_at=r.updated_at, flags=[f.value for f in assessed.flags],
        )


class RowErrorView(BaseModel):
    row: int
    field: str
    message: str


class ImportReportView(BaseModel):
    """``row`` in errors is the row's position in the request array, from 1."""

    received: int
    imported: int
    created: int
    updated: int
    skipped: int
    failed: int
    errors: list[RowErrorView]
    ignored_fields: list[str]

    @classmethod
    def of(cls, report: ImportReport) -> ImportReportView:
        return cls(
            received=report.received, imported=report.imported, created=report.created,
            updated=report.updated, skipped=report.skipped, failed=report.failed,
            errors=[RowErrorView(row=e.row, field=e.field, message=e.message)
                    for e in report.errors],
            ignored_fields=list(report.ignored_fields),
        )


@router.post("/import", response_model=ImportReportView,
             summary="Import a batch of inventory rows; bad rows are reported, good ones kept")
def import_rows(
    rows: Annotated[list[Any], Body(max_length=MAX_IMPORT_BATCH, description=(
        "Row objects: kind, name, source, external_id, owner, created_at, last_used_at, "
        "expires_at, privileges, notes. A record is updated when (source, external_id) "
        "exists."))],
    services: Services,
    admin: Admin,
    source: Annotated[str | None, Query(max_length=64, description=(
        "Source of the rows that do not name one (default: manual)"))] = None,
) -> ImportReportView:
    return ImportReportView.of(services.inventory.import_rows(rows, default_source=source))


@router.get("", response_model=list[NhiView],
            summary="List inventory records with their posture flags, in first-import order")
def list_inventory(
    services: Services,
    admin: Admin,
    kind: NhiKind | None = None,
    owner: Annotated[str | None, Query(max_length=255)] = None,
    source: Annotated[str | None, Query(max_length=64)] = None,
    flag: Annotated[list[str] | None, Query(description=(
        "Only records showing this posture flag (repeatable: all must hold): no_owner, "
        "expired, long_lived, unused_30d"))] = None,
    after: Annotated[str | None, Query(max_length=26, description=(
        "Continue after the record with this id"))] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_INVENTORY_PAGE)] = 1000,
) -> list[NhiView]:
    query = InventoryQuery(kind=kind, owner=owner, source=source, after=after, limit=limit)
    flags = parse_flags(flag or ())
    return [NhiView.of(a) for a in services.inventory.list(query, flags)]


@router.get("/{record_id}", response_model=NhiView, summary="Show an inventory record")
def get_inventory_record(record_id: str, services: Services, admin: Admin) -> NhiView:
    return NhiView.of(services.inventory.get(record_id))
