"""What the routes need, as typed dependencies: the services, the calling admin, the
calling node."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from cryptography import x509
from fastapi import Depends, Request

from tabard.attestation import JoinTokens
from tabard.audit import AuditEvent, AuditKind, AuditLog, Outcome, What
from tabard.authority import Authority
from tabard.clock import Clock
from tabard.directory import AdminPrincipal, AdminTokenService, Directory
from tabard.discovery import InventoryDiscovery
from tabard.oauth import AuthorizationServer
from tabard.policy import ApprovalService, PolicyService
from tabard.registry import (
    AgentService,
    EntryService,
    EntrySvidService,
    InstanceService,
    NodePrincipal,
    NodeService,
    NodeUnauthenticatedError,
    OrphanDetector,
    RetirementService,
    RouteService,
)
from tabard.signals import KillSwitch
from tabard.spiffe import TrustDomain, X509SvidError
from tabard.spiffe.x509svid import verify_x509_svid
from tabard.vault import Leases, Vault

__all__ = ["Admin", "Node", "ServerServices", "Services", "SignalReader", "get_services",
           "require_node", "require_signal_reader"]


@dataclass
class ServerServices:
    """Everything the REST API calls, filled in by the composition root (``tabard.app``)."""

    trust_domain: TrustDomain
    clock: Clock
    authority: Authority
    admin_tokens: AdminTokenService
    database_ready: Callable[[], bool]
    entries: EntryService
    nodes: NodeService
    instances: InstanceService
    entry_svids: EntrySvidService
    join_tokens: JoinTokens
    agents: AgentService
    retirement: RetirementService
    orphans: OrphanDetector
    inventory: InventoryDiscovery
    directory: Directory
    policies: PolicyService
    secrets: Vault
    leases: Leases
    oauth: AuthorizationServer | None = None
    audit: AuditLog | None = None
    routes: RouteService | None = None
    approvals: ApprovalService | None = None
    kill: KillSwitch | None = None
    signal_heartbeat: float = 15.0


def get_services(request: Request) -> ServerServices:
    services: ServerServices = request.app.state.services
    return services


Services = Annotated[ServerServices, Depends(get_services)]


_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


def require_admin(request: Request, services: Services) -> AdminPrincipal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    admin = services.admin_tokens.authenticate(
        token.strip() if scheme.lower() == "bearer" else None)
    if services.audit is not None and request.method not in _READ_ONLY:
        _record_admin_intent(request, services.audit, admin)
    return admin


def _record_admin_intent(request: Request, audit: AuditLog, admin: AdminPrincipal) -> None:
    """Fail closed: a mutating admin request is recorded (outcome ``pending``) before its
    handler runs; if the audit log cannot take it, the request is refused (503) before it
    has any effect. ``tabard.server.app`` records the outcome after the response."""
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    event = AuditEvent(kind=AuditKind.ADMIN_ACTION, actor=admin.name,
                       what=What(operation=f"{request.method} {template}",
                                 target=request.url.path),
                       outcome=Outcome.PENDING,
                       details={"token_id": admin.token_id})
    record = audit.append(event)
    request.state.audit_intent = (event, record.seq)


Admin = Annotated[AdminPrincipal, Depends(require_admin)]


def require_node(request: Request, services: Services) -> NodePrincipal:
    """The node behind a node API call: the TLS client chain (put into the ASGI scope by the
    node API listener) must be an X509-SVID valid against the current bundle now, whose ID
    is that of a known node that is not banned."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        raise NodeUnauthenticatedError("a node X509-SVID is required as client certificate")
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except (ValueError, TypeError):
        raise NodeUnauthenticatedError("the client certificate cannot be parsed") from None
    try:
        spiffe_id = verify_x509_svid(certificates, services.authority.bundle(),
                                     at=services.clock.now())
    except X509SvidError as exc:
        raise NodeUnauthenticatedError(
            f"the client certificate is not a valid X509-SVID of this trust domain "
            f"({exc.reason})"
        ) from None
    return services.nodes.authenticate(spiffe_id)


Node = Annotated[NodePrincipal, Depends(require_node)]


def require_signal_reader(request: Request, services: Services) -> str:
    """Who may read the signal stream: a node by its X509-SVID on the node API listener, or
    an admin token. Returns the reader's name (for logs)."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    if tls.get("client_cert_chain"):
        return str(require_node(request, services).spiffe_id)
    return require_admin(request, services).actor


SignalReader = Annotated[str, Depends(require_signal_reader)]
