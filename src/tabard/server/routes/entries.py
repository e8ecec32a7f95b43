"""Registration entries (admin): selectors → SPIFFE ID or ``{instance}`` template."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from tabard.registry import Entry, EntryPatch, EntrySpec
from tabard.server.deps import Admin, Services

router = APIRouter(prefix="/api/v1/entries", tags=["registry"])


class EntryView(BaseModel):
    """The wire form of an entry (``docs/design/node-api.md``); TTLs in seconds."""

    id: str
    spiffe_id: str
    parent_id: str
    selectors: list[str]
    x509_svid_ttl: int
    jwt_svid_ttl: int
    dns_names: list[str]
    federates_with: list[str]
    hint: str
    revision: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, e: Entry) -> EntryView:
        return cls(
            id=e.id, spiffe_id=e.spiffe_id.text, parent_id=str(e.parent_id),
            selectors=[str(s) for s in e.selectors], x509_svid_ttl=e.x509_svid_ttl,
            jwt_svid_ttl=e.jwt_svid_ttl, dns_names=list(e.dns_names),
            federates_with=[td.name for td in e.federates_with], hint=e.hint,
            revision=e.revision, created_at=e.created_at, updated_at=e.updated_at,
        )


class CreateEntry(BaseModel):
    spiffe_id: str = Field(max_length=2048, examples=[
        "spiffe://example.org/agent/trading/instance/{instance}"])
    parent_id: str = Field(max_length=2048, examples=["spiffe://example.org/node/<id>"])
    selectors: list[str] = Field(max_length=64, examples=[["unix:uid:1000"]])
    x509_svid_ttl: int | None = Field(default=None, description="Seconds; server default")
    jwt_svid_ttl: int | None = Field(default=None, description="Seconds; server default")
    dns_names: list[str] = Field(default_factory=list, max_length=32)
    federates_with: list[str] = Field(default_factory=list, max_length=32)
    hint: str = Field(default="", max_length=256)


class UpdateEntry(BaseModel):
    """Only the fields present change."""

    spiffe_id: str | None = Field(default=None, max_length=2048)
    parent_id: str | None = Field(default=None, max_length=2048)
    selectors: list[str] | None = Field(default=None, max_length=64)
    x509_svid_ttl: int | None = None
    jwt_svid_ttl: int | None = None
    dns_names: list[str] | None = Field(default=None, max_length=32)
    federates_with: list[str] | None = Field(default=None, max_length=32)
    hint: str | None = Field(default=None, max_length=256)


@router.post("", response_model=EntryView, status_code=201, summary="Create an entry")
def create_entry(body: CreateEntry, services: Services, admin: Admin) -> EntryView:
    return EntryView.of(services.entries.create(EntrySpec(**body.model_dump())))


@router.get("", response_model=list[EntryView], summary="List entries")
def list_entries(
    services: Services,
    admin: Admin,
    parent_id: Annotated[str | None, Query(max_length=2048)] = None,
    spiffe_id: Annotated[str | None, Query(max_length=2048)] = None,
) -> list[EntryView]:
    return [EntryView.of(e) for e in services.entries.list(parent_id=parent_id,
                                                           spiffe_id=spiffe_id)]


@router.get("/{entry_id}", response_model=EntryView, summary="Show an entry")
def get_entry(entry_id: str, services: Services, admin: Admin) -> EntryView:
    return EntryView.of(services.entries.get(entry_id))


@router.patch("/{entry_id}", response_model=EntryView, summary="Change an entry")
def update_entry(entry_id: str, body: UpdateEntry, services: Services,
                 admin: Admin) -> EntryView:
    patch = EntryPatch(**body.model_dump(exclude_unset=True))
    return EntryView.of(services.entries.update(entry_id, patch))


@router.delete("/{entry_id}", status_code=204, response_class=Response,
               summary="Delete an entry")
def delete_entry(entry_id: str, services: Services, admin: Admin) -> Response:
    services.entries.delete(entry_id)
    return Response(status_code=204)
