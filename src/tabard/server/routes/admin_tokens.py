"""Admin token management: a new token is shown once, in the creating response only."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from tabard.directory import AdminTokenRecord
from tabard.server.deps import Admin, Services

router = APIRouter(prefix="/api/v1/admin-tokens", tags=["admin"])


class AdminTokenView(BaseModel):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, r: AdminTokenRecord) -> AdminTokenView:
        return cls(id=r.id, name=r.name, created_at=r.created_at, last_used_at=r.last_used_at,
                   revoked_at=r.revoked_at)


class CreateAdminToken(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class CreatedAdminToken(AdminTokenView):
    token: str = Field(description="Shown only in this response; tabard stores only a digest")


@router.get("", response_model=list[AdminTokenView], summary="List admin tokens (no secrets)")
def list_tokens(services: Services, admin: Admin) -> list[AdminTokenView]:
    return [AdminTokenView.of(r) for r in services.admin_tokens.list()]


@router.post("", response_model=CreatedAdminToken, status_code=201,
             summary="Create an admin token")
def create_token(body: CreateAdminToken, services: Services, admin: Admin) -> CreatedAdminToken:
    issued = services.admin_tokens.create(body.name)
    return CreatedAdminToken(**AdminTokenView.of(issued.record).model_dump(), token=issued.token)


@router.delete("/{token_id}", status_code=204, response_class=Response,
               summary="Revoke an admin token")
def revoke_token(token_id: str, services: Services, admin: Admin) -> Response:
    services.admin_tokens.revoke(token_id)
    return Response(status_code=204)
