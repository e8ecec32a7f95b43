"""The node API (``docs/design/node-api.md``): what ``tabard node`` calls on the server.

``attest`` is authenticated by the attestor's evidence (a join token); every other route by
the node's X509-SVID as TLS client certificate (:data:`~tabard.server.deps.Node`). Keys of
X509-SVIDs travel as PKCS#10 requests: only the CSR's public key is used (after its
signature proves possession); subject and extensions are ignored, since the SPIFFE ID, TTL
and DNS names come from the server's records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tabard.audit import AuditEvent, AuditKind, What, Who
from tabard.authority import MintedX509Svid, PublicKey
from tabard.errors import Denied, Invalid, NotFound
from tabard.registry import (
    MAX_AUDIENCES,
    MAX_SVID_REQUESTS,
    InstanceReport,
    NodePrincipal,
    NodeSvid,
    X509SvidRequest,
    parse_selectors,
)
from tabard.server.audit import record_issuance
from tabard.server.deps import Node, ServerServices, Services
from tabard.server.routes.entries import EntryView

router = APIRouter(prefix="/node/v1", tags=["node API"])


def _refuse_killed(services: ServerServices, node: NodePrincipal,
                   instance_ids: list[str | None]) -> None:
    """Defence in depth behind the nodes' own enforcement: no SVID for a node or an instance
    the kill switch suspends, even to a node that has not heard of it yet (the agent's own
    suspension is refused by the lifecycle gate)."""
    kill = services.kill
    if kill is None or not len(kill.hub.kill_list):
        return
    kill_list = kill.hub.kill_list
    wanted: list[str | None] = [*dict.fromkeys(i for i in instance_ids if i is not None)]
    for instance_id in wanted or [None]:
        spiffe_id = None
        if instance_id is not None:
            try:
                spiffe_id = str(services.instances.get(instance_id).spiffe_id)
            except NotFound:
                continue  # the mint itself refuses an unknown instance
        found = kill_list.for_workload(spiffe_id or "", str(node.spiffe_id))
        if found is not None and found.suspension is not None:
            raise Denied(f"{found.suspension.target} is suspended by the kill switch",
                         code="suspended")

_CSR_MAX = 16384


def _public_key(pem: str) -> PublicKey:
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


def _pem_chain(svid: MintedX509Svid) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in svid.chain)


class AttestRequest(BaseModel):
    """Fields beyond ``attestor`` and ``csr`` are the attestor's evidence."""

    model_config = ConfigDict(extra="allow")

    attestor: str = Field(max_length=64, examples=["join_token"])
    csr: str = Field(max_length=_CSR_MAX)
    join_token: str | None = Field(default=None, max_length=256)


class RenewRequest(BaseModel):
    csr: str = Field(max_length=_CSR_MAX)


class NodeSvidResponse(BaseModel):
    node_id: str
    spiffe_id: str
    svid_pem: str
    expires_at: datetime
    bundle: dict[str, Any]

    @classmethod
    def of(cls, issued: NodeSvid) -> NodeSvidResponse:
        return cls(node_id=issued.node.id, spiffe_id=str(issued.node.spiffe_id),
                   svid_pem=_pem_chain(issued.svid), expires_at=issued.svid.expires_at,
                   bundle=issued.bundle.to_jwks())


class SyncResponse(BaseModel):
    revision: int
    entries: list[EntryView]
    bundle: dict[str, Any]
    federated_bundles: dict[str, dict[str, Any]]


class InstanceRequest(BaseModel):
    entry_id: str = Field(max_length=64)
    pid: int
    start_time: float
    uid: int
    gid: int
    exe_path: str = Field(max_length=4096)
    exe_sha256: str = Field(max_length=64)
    selectors: list[str] = Field(max_length=256)
    parent_instance_id: str | None = Field(default=None, max_length=64)


class InstanceResponse(BaseModel):
    instance_id: str
    spiffe_id: str
    created: bool


class X509Item(BaseModel):
    entry_id: str = Field(max_length=64)
    instance_id: str | None = Field(default=None, max_length=64)
    csr: str = Field(max_length=_CSR_MAX)


class X509Batch(BaseModel):
    requests: list[X509Item] = Field(max_length=MAX_SVID_REQUESTS)


class X509Svid(BaseModel):
    entry_id: str
    instance_id: str | None
    spiffe_id: str
    svid_pem: str
    expires_at: datetime


class X509Response(BaseModel):
    svids: list[X509Svid]


class JwtRequest(BaseModel):
    entry_id: str = Field(max_length=64)
    instance_id: str | None = Field(default=None, max_length=64)
    audience: list[str] = Field(min_length=1, max_length=MAX_AUDIENCES)
    ttl_seconds: int | None = None


class JwtResponse(BaseModel):
    spiffe_id: str
    token: str
    expires_at: datetime


class SeenRequest(BaseModel):
    instance_ids: list[str] = Field(max_length=10_000)


class SeenResponse(BaseModel):
    updated: int


@router.post("/attest", response_model=NodeSvidResponse,
             summary="Attest a node (join token) and get its node SVID")
def attest(body: AttestRequest, services: Services) -> NodeSvidResponse:
    public_key = _public_key(body.csr)
    payload = body.model_dump(exclude={"csr", "attestor"})
    issued = services.nodes.attest(body.attestor, payload, public_key)
    record_issuance(services.audit, actor=f"attestor:{body.attestor}", kind="x509",
                    spiffe_id=str(issued.node.spiffe_id), node=issued.node.id,
                    details={"reason": "node_attestation",
                             "serial": format(issued.svid.leaf.serial_number, "x")})
    return NodeSvidResponse.of(issued)


@router.post("/renew", response_model=NodeSvidResponse, summary="Renew the node SVID")
def renew(body: RenewRequest, services: Services, node: Node) -> NodeSvidResponse:
    issued = services.nodes.renew(node, _public_key(body.csr))
    record_issuance(services.audit, actor=str(node.spiffe_id), kind="x509",
                    spiffe_id=str(issued.node.spiffe_id), node=node.node_id,
                    details={"reason": "node_renewal",
                             "serial": format(issued.svid.leaf.serial_number, "x")})
    return NodeSvidResponse.of(issued)


@router.post("/sync", response_model=SyncResponse,
             summary="The node's entries, revision and bundles")
def sync(services: Services, node: Node) -> SyncResponse:
    revision, entries = services.entries.for_node(node)
    return SyncResponse(revision=revision, entries=[EntryView.of(e) for e in entries],
                        bundle=services.authority.bundle().to_jwks(), federated_bundles={})


@router.post("/instances", response_model=InstanceResponse,
             summary="Register a process of an instance-template entry")
def register_instance(body: InstanceRequest, services: Services,
                      node: Node) -> InstanceResponse:
    report = InstanceReport(
        entry_id=body.entry_id, pid=body.pid, start_time=body.start_time, uid=body.uid,
        gid=body.gid, exe_path=body.exe_path, exe_sha256=body.exe_sha256,
        selectors=parse_selectors(body.selectors), parent_instance_id=body.parent_instance_id,
    )
    registration = services.instances.register(node, report)
    return InstanceResponse(instance_id=registration.instance.id,
                            spiffe_id=str(registration.instance.spiffe_id),
                            created=registration.created)


@router.post("/svids/x509", response_model=X509Response,
             summary="X509-SVIDs of the node's entries (all or none)")
def x509_svids(body: X509Batch, services: Services, node: Node,
               request: Request) -> X509Response:
    _refuse_killed(services, node, [item.instance_id for item in body.requests])
    requests = [X509SvidRequest(item.entry_id, item.instance_id, _public_key(item.csr))
                for item in body.requests]
    issued = services.entry_svids.x509(node, requests)
    if services.audit is not None and issued:
        services.audit.append_many([AuditEvent(
            kind=AuditKind.ISSUANCE, actor=str(node.spiffe_id),
            who=Who.of_spiffe_id(str(i.svid.spiffe_id), node=node.node_id,
                                 **({"instance": i.instance_id} if i.instance_id else {})),
            what=What(operation="svid.x509", target=str(i.svid.spiffe_id)),
            details={"entry_id": i.entry_id, "serial": format(i.svid.leaf.serial_number, "x"),
                     "expires_at": i.svid.expires_at.isoformat()},
        ) for i in issued])
    if issued:
        request.app.state.metrics.svids_minted.labels("x509").inc(len(issued))
    return X509Response(svids=[
        X509Svid(entry_id=i.entry_id, instance_id=i.instance_id,
                 spiffe_id=str(i.svid.spiffe_id), svid_pem=_pem_chain(i.svid),
                 expires_at=i.svid.expires_at)
        for i in issued
    ])


@router.post("/svids/jwt", response_model=JwtResponse,
             summary="A JWT-SVID of one of the node's entries")
def jwt_svid(body: JwtRequest, services: Services, node: Node,
             request: Request) -> JwtResponse:
    _refuse_killed(services, node, [body.instance_id])
    issued = services.entry_svids.jwt(node, body.entry_id, body.instance_id, body.audience,
                                      body.ttl_seconds)
    record_issuance(services.audit, actor=str(node.spiffe_id), kind="jwt",
                    spiffe_id=str(issued.spiffe_id), node=node.node_id, entry_id=body.entry_id,
                    details={"audience": list(body.audience),
                             "expires_at": issued.expires_at.isoformat()})
    request.app.state.metrics.svids_minted.labels("jwt").inc()
    return JwtResponse(spiffe_id=str(issued.spiffe_id), token=issued.token,
                       expires_at=issued.expires_at)


@router.post("/instances/seen", response_model=SeenResponse,
             summary="Record that instances are still running")
def instances_seen(body: SeenRequest, services: Services, node: Node) -> SeenResponse:
    return SeenResponse(updated=services.instances.seen(node, body.instance_ids))
