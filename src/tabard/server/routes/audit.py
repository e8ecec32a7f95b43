"""The audit log over REST (admin): records, export, trace, verification, checkpoints and
proofs. Every route calls one :class:`~tabard.audit.AuditLog` method."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tabard.audit import AuditLog, AuditRecord, StoredCheckpoint
from tabard.errors import Unavailable
from tabard.server.deps import Admin, Services

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def _log(services: Any) -> AuditLog:
    audit: AuditLog | None = services.audit
    if audit is None:
        raise Unavailable("this server has no audit log")
    return audit


def _record(r: AuditRecord) -> dict[str, Any]:
    return r.to_json()


def _checkpoint(cp: StoredCheckpoint, *, document: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"tree_size": cp.tree_size, "root_hash": cp.root_hash.hex(),
                           "created_at": cp.created_at}
    if document:
        out["jws"] = cp.document
    return out


class HeadView(BaseModel):
    seq: int
    hash: str


@router.get("/head", summary="The last record's number and hash")
def head(services: Services, admin: Admin) -> HeadView | None:
    h = _log(services).head()
    return HeadView(seq=h.seq, hash=h.hash.hex()) if h else None


@router.get("/records", summary="Records in order, after a number (paged)")
def records(services: Services, admin: Admin, after: int = 0,
            limit: int = Query(default=100, ge=1, le=10_000), kind: str | None = None,
            since: datetime | None = None, until: datetime | None = None
            ) -> list[dict[str, Any]]:
    return [_record(r) for r in _log(services).records(after=after, limit=limit, kind=kind,
                                                       since=since, until=until)]


@router.get("/export", summary="Every record from a time on, as JSON Lines")
def export(services: Services, admin: Admin, since: datetime | None = None,
           until: datetime | None = None) -> StreamingResponse:
    audit = _log(services)

    def lines() -> Iterator[bytes]:
        for r in audit.export(since=since, until=until):
            yield json.dumps(r.to_json(), separators=(",", ":")).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/jsonl")


@router.get("/trace", summary="Everything done by or for an agent, instance or user")
def trace(services: Services, admin: Admin, agent: str | None = None,
          instance: str | None = None, user: str | None = None, after: int = 0,
          limit: int = Query(default=1000, ge=1, le=10_000)) -> list[dict[str, Any]]:
    return [_record(r) for r in _log(services).trace(agent=agent, instance=instance, user=user,
                                                     after=after, limit=limit)]


@router.get("/verify", summary="Verify the chain and every signed checkpoint")
def verify(services: Services, admin: Admin, from_checkpoint: bool = False) -> dict[str, Any]:
    return _log(services).verify(from_checkpoint=from_checkpoint).to_json()


@router.get("/checkpoints", summary="Signed checkpoints, smallest first")
def checkpoints(services: Services, admin: Admin) -> list[dict[str, Any]]:
    return [_checkpoint(cp, document=False) for cp in _log(services).checkpoints()]


@router.post("/checkpoints", summary="Sign the current tree head now")
def create_checkpoint(services: Services, admin: Admin) -> dict[str, Any]:
    return _log(services).checkpoint().to_json()


@router.get("/checkpoints/latest", summary="The latest checkpoint, with its JWS")
def latest_checkpoint(services: Services, admin: Admin) -> dict[str, Any]:
    return _checkpoint(_log(services).get_checkpoint())


@router.get("/checkpoints/{tree_size}", summary="One checkpoint, with its JWS")
def get_checkpoint(tree_size: int, services: Services, admin: Admin) -> dict[str, Any]:
    return _checkpoint(_log(services).get_checkpoint(tree_size))


@router.get("/proofs/inclusion", summary="RFC 9162 inclusion proof of a record")
def inclusion(services: Services, admin: Admin, seq: int, tree_size: int | None = None
              ) -> dict[str, Any]:
    p = _log(services).inclusion_proof(seq, tree_size)
    return {"seq": p.seq, "leaf_index": p.seq - 1, "tree_size": p.tree_size,
            "leaf_hash": p.leaf_hash.hex(), "path": [h.hex() for h in p.path],
            "root_hash": p.root_hash.hex()}


@router.get("/proofs/consistency", summary="RFC 9162 consistency proof between two sizes")
def consistency(services: Services, admin: Admin, first: int, second: int | None = None
                ) -> dict[str, Any]:
    p = _log(services).consistency_proof(first, second)
    return {"first": p.first, "second": p.second, "first_root": p.first_root.hex(),
            "second_root": p.second_root.hex(), "path": [h.hex() for h in p.path]}
