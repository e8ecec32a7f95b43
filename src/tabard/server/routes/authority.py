"""Admin minting (break-glass and testing) and authority key management.

Minting takes a PKCS#10 CSR: the private key of an X509-SVID is made where it is used and never
crosses the API. Only the CSR's public key is used; its subject and extensions are ignored,
since the SPIFFE ID and TTL come from the authenticated admin's request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tabard.authority import AuthorityKeyRecord
from tabard.config import parse_duration
from tabard.errors import Invalid
from tabard.server.audit import record_issuance
from tabard.server.deps import Admin, Services
from tabard.spiffe import SpiffeId

router = APIRouter(prefix="/api/v1", tags=["authority"])


class X509MintRequest(BaseModel):
    spiffe_id: str = Field(max_length=2048)
    csr: str = Field(max_length=16384, description="PEM PKCS#10 request carrying the public key")
    ttl: str | None = Field(default=None, max_length=32, examples=["1h"])
    dns_names: list[str] = Field(default_factory=list, max_length=32)


class X509MintResponse(BaseModel):
    spiffe_id: str
    svid_pem: str
    bundle_pem: str
    expires_at: datetime
    serial: str


class JwtMintRequest(BaseModel):
    spiffe_id: str = Field(max_length=2048)
    audience: list[str] = Field(min_length=1, max_length=16)
    ttl: str | None = Field(default=None, max_length=32, examples=["5m"])


class JwtMintResponse(BaseModel):
    spiffe_id: str
    token: str
    expires_at: datetime


class AuthorityView(BaseModel):
    id: str
    kind: str
    state: str
    key_id: str
    key_type: str
    created_at: datetime
    activated_at: datetime | None
    not_after: datetime
    retired_at: datetime | None

    @classmethod
    def of(cls, r: AuthorityKeyRecord) -> AuthorityView:
        return cls(
            id=r.id, kind=r.kind, state=r.state, key_id=r.key_id, key_type=str(r.key_type),
            created_at=r.created_at, activated_at=r.activated_at, not_after=r.not_after,
            retired_at=r.retired_at,
        )


class RotateRequest(BaseModel):
    kind: Literal["x509", "jwt"] | None = None


def _csr_public_key(pem: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise Invalid("csr: not a PEM PKCS#10 certificate request") from None
    if not csr.is_signature_valid:
        raise Invalid("csr: signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise Invalid("csr: only EC and RSA keys are supported")
    return key


@router.post("/svids/x509", response_model=X509MintResponse,
             summary="Mint an X509-SVID for a CSR (admin)")
def mint_x509(body: X509MintRequest, services: Services, admin: Admin,
              request: Request) -> X509MintResponse:
    spiffe_id = SpiffeId.parse(body.spiffe_id)
    public_key = _csr_public_key(body.csr)
    ttl = parse_duration(body.ttl) if body.ttl else None
    minted = services.authority.mint_x509_svid(
        spiffe_id, public_key=public_key, ttl=ttl, dns_names=tuple(body.dns_names)
    )
    leaf = minted.chain[0]
    record_issuance(services.audit, actor=admin.name, kind="x509", spiffe_id=str(spiffe_id),
                    details={"serial": format(leaf.serial_number, "x"),
                             "expires_at": leaf.not_valid_after_utc.isoformat()})
    request.app.state.metrics.svids_minted.labels("x509").inc()
    return X509MintResponse(
        spiffe_id=str(spiffe_id),
        svid_pem="".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in minted.chain
        ),
        bundle_pem=services.authority.bundle().x509_pem(),
        expires_at=leaf.not_valid_after_utc,
        serial=format(leaf.serial_number, "x"),
    )


@router.post("/svids/jwt", response_model=JwtMintResponse,
             summary="Mint a JWT-SVID (admin)")
def mint_jwt(body: JwtMintRequest, services: Services, admin: Admin,
             request: Request) -> JwtMintResponse:
    spiffe_id = SpiffeId.parse(body.spiffe_id)
    if any(not a or len(a) > 2048 for a in body.audience):
        raise Invalid("audience: each value must be 1-2048 characters")
    ttl = parse_duration(body.ttl) if body.ttl else None
    token = services.authority.mint_jwt_svid(spiffe_id, body.audience, ttl=ttl)
    expiry = jwt.decode(token, options={"verify_signature": False})["exp"]
    record_issuance(services.audit, actor=admin.name, kind="jwt", spiffe_id=str(spiffe_id),
                    details={"audience": list(body.audience),
                             "expires_at": datetime.fromtimestamp(expiry, UTC).isoformat()})
    request.app.state.metrics.svids_minted.labels("jwt").inc()
    return JwtMintResponse(
        spiffe_id=str(spiffe_id), token=token, expires_at=datetime.fromtimestamp(expiry, UTC)
    )


@router.get("/authorities", response_model=list[AuthorityView],
            summary="CA and JWT signing keys with their rotation state")
def list_authorities(services: Services, admin: Admin) -> list[AuthorityView]:
    return [AuthorityView.of(r) for r in services.authority.authorities()]


@router.post("/authorities/rotate", response_model=list[AuthorityView],
             summary="Activate the next CA and/or JWT key now")
def rotate(body: RotateRequest, services: Services, admin: Admin) -> list[AuthorityView]:
    services.authority.rotate(body.kind)
    return [AuthorityView.of(r) for r in services.authority.authorities()]


@router.post("/authorities/{record_id}/retire", response_model=list[AuthorityView],
             summary="Retire an old or prepared key: its SVIDs stop validating")
def retire(record_id: str, services: Services, admin: Admin) -> list[AuthorityView]:
    services.authority.retire(record_id)
    return [AuthorityView.of(r) for r in services.authority.authorities()]
