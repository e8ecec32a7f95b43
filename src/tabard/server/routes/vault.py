"""Secrets and leases (admin). A value goes in (create, rotate) and never comes out: no
endpoint returns one, and a refused value is never echoed in the problem."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from tabard.errors import Invalid
from tabard.server.deps import Admin, Services
from tabard.vault import (
    MAX_LEASE_PAGE,
    Lease,
    LeaseQuery,
    SecretDetails,
    SecretMeta,
    SecretValueError,
    SecretVersion,
)

router = APIRouter(prefix="/api/v1/secrets", tags=["vault"])
leases_router = APIRouter(prefix="/api/v1/leases", tags=["vault"])

_VALUE_HELP = ("The value, base64 (standard alphabet, padded). Stored encrypted; no API "
               "returns it.")


class SecretVersionView(BaseModel):
    version: int
    state: str
    created_at: datetime
    expires_at: datetime | None
    destroyed_at: datetime | None

    @classmethod
    def of(cls, v: SecretVersion, current: int) -> SecretVersionView:
        return cls(version=v.version, state=v.state(current).value, created_at=v.created_at,
                   expires_at=v.expires_at, destroyed_at=v.destroyed_at)


class SecretView(BaseModel):
    name: str
    description: str
    current_version: int
    created_at: datetime
    updated_at: datetime
    versions: list[SecretVersionView] | None = None

    @classmethod
    def of(cls, m: SecretMeta, details: SecretDetails | None = None) -> SecretView:
        versions = None if details is None else [
            SecretVersionView.of(v, m.current_version) for v in details.versions]
        return cls(name=m.name, description=m.description, current_version=m.current_version,
                   created_at=m.created_at, updated_at=m.updated_at, versions=versions)


class CreateSecret(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    value_base64: str = Field(description=_VALUE_HELP, repr=False)
    description: str = Field(default="", max_length=1024)


class RotateSecret(BaseModel):
    value_base64: str = Field(description=_VALUE_HELP, repr=False)
    description: str | None = Field(default=None, max_length=1024)


def _decode(value_base64: str) -> bytes:
    try:
        return base64.b64decode(value_base64, validate=True)
    except (binascii.Error, ValueError):
        raise SecretValueError("value_base64 is not valid base64") from None


@router.post("", response_model=SecretView, status_code=201,
             summary="Store a new secret (version 1); the value is never returned")
def create_secret(body: CreateSecret, services: Services, admin: Admin) -> SecretView:
    meta = services.secrets.put(body.name, _decode(body.value_base64),
                                description=body.description)
    return SecretView.of(meta)


@router.get("", response_model=list[SecretView], summary="List secrets (metadata only)")
def list_secrets(services: Services, admin: Admin) -> list[SecretView]:
    return [SecretView.of(m) for m in services.secrets.list()]


@router.get("/{name}", response_model=SecretView,
            summary="A secret's metadata and versions (never the value)")
def show_secret(name: str, services: Services, admin: Admin) -> SecretView:
    details = services.secrets.show(name)
    return SecretView.of(details.meta, details)


@router.post("/{name}/rotate", response_model=SecretView,
             summary="Add a new current version; the previous one stays usable for the grace "
             "period, then is destroyed")
def rotate_secret(name: str, body: RotateSecret, services: Services,
                  admin: Admin) -> SecretView:
    meta = services.secrets.rotate(name, _decode(body.value_base64),
                                   description=body.description)
    return SecretView.of(meta)


@router.delete("/{name}", status_code=204, response_class=Response,
               summary="Delete a secret: every version's ciphertext is erased")
def delete_secret(name: str, services: Services, admin: Admin) -> Response:
    services.secrets.delete(name)
    return Response(status_code=204)


class LeaseView(BaseModel):
    id: str
    provider: str
    route: str
    agent: str | None
    agent_instance: str | None
    user: str | None
    secret_name: str | None
    secret_version: int | None
    issued_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool

    @classmethod
    def of(cls, lease: Lease, now: datetime) -> LeaseView:
        return cls(id=lease.id, provider=lease.provider.value, route=lease.route,
                   agent=lease.agent, agent_instance=lease.agent_instance, user=lease.user,
                   secret_name=lease.secret_name, secret_version=lease.secret_version,
                   issued_at=lease.issued_at, expires_at=lease.expires_at,
                   revoked_at=lease.revoked_at, active=lease.active(now))


class RevokeLeases(BaseModel):
    agent: str | None = Field(default=None, min_length=1, max_length=63)
    agent_instance: str | None = Field(default=None, min_length=1, max_length=2048)


class RevokedCount(BaseModel):
    revoked: int


@leases_router.get("", response_model=list[LeaseView],
                   summary="List leases (credentials issued, never their values), newest first")
def list_leases(
    services: Services,
    admin: Admin,
    agent: Annotated[str | None, Query(max_length=63)] = None,
    agent_instance: Annotated[str | None, Query(max_length=2048)] = None,
    secret: Annotated[str | None, Query(max_length=128)] = None,
    route: Annotated[str | None, Query(max_length=255)] = None,
    active: Annotated[bool, Query(description="Only leases neither revoked nor expired")
                      ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LEASE_PAGE)] = 1000,
) -> list[LeaseView]:
    now = services.clock.now()
    query = LeaseQuery(agent=agent, agent_instance=agent_instance, secret_name=secret,
                       route=route, active_at=now if active else None, limit=limit)
    return [LeaseView.of(lease, now) for lease in services.leases.list(query)]


@leases_router.get("/{lease_id}", response_model=LeaseView, summary="Show a lease")
def show_lease(lease_id: str, services: Services, admin: Admin) -> LeaseView:
    return LeaseView.of(services.leases.get(lease_id), services.clock.now())


@leases_router.post("/{lease_id}/revoke", response_model=LeaseView,
                    summary="Revoke a lease (idempotent)")
def revoke_lease(lease_id: str, services: Services, admin: Admin) -> LeaseView:
    return LeaseView.of(services.leases.revoke(lease_id), services.clock.now())


@leases_router.post("/revoke", response_model=RevokedCount,
                    summary="Revoke every lease of an agent or of one agent instance")
def revoke_leases(body: RevokeLeases, services: Services, admin: Admin) -> RevokedCount:
    if (body.agent is None) == (body.agent_instance is None):
        raise Invalid("give exactly one of agent and agent_instance")
    if body.agent is not None:
        return RevokedCount(revoked=services.leases.revoke_agent(body.agent))
    assert body.agent_instance is not None
    return RevokedCount(revoked=services.leases.revoke_instance(body.agent_instance))
