"""Join tokens (admin): one-time secrets that let a host attest as a new node."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tabard.config import parse_duration
from tabard.server.deps import Admin, Services

router = APIRouter(prefix="/api/v1/join-tokens", tags=["registry"])


class CreateJoinToken(BaseModel):
    ttl: str | None = Field(default=None, max_length=32, examples=["10m"],
                            description="Lifetime (default 10m, at most 30d)")


class CreatedJoinToken(BaseModel):
    id: str
    token: str = Field(description="Shown only in this response; tabard stores only a digest")
    created_at: datetime
    expires_at: datetime


@router.post("", response_model=CreatedJoinToken, status_code=201,
             summary="Generate a join token for node attestation")
def create_join_token(body: CreateJoinToken, services: Services,
                      admin: Admin) -> CreatedJoinToken:
    ttl = parse_duration(body.ttl) if body.ttl else None
    issued = services.join_tokens.generate(ttl)
    return CreatedJoinToken(id=issued.record.id, token=issued.token,
                            created_at=issued.record.created_at,
                            expires_at=issued.record.expires_at)
