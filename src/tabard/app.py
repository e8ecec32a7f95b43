"""The composition root: settings → adapters (store, key manager) → services → interfaces.

Only entry points (the CLI) and integration tests import this module. It is the one place
that knows which implementation fills each port.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import threading
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from tabard.attestation import JoinTokenAttestor, JoinTokens, NodeAttestors
from tabard.audit import AuditEvent, AuditKind, AuditLog, AuditSigner, Outcome, What, Who
from tabard.authority import (
    Authority,
    DiskKeyManager,
    KeyManager,
    KeyType,
    UpstreamCA,
    load_kek,
)
from tabard.clock import Clock, SystemClock
from tabard.config import Settings
from tabard.directory import AdminTokenService, Directory, DirectoryService, IssuedAdminToken
from tabard.discovery import InventoryDiscovery
from tabard.errors import NotFound, TabardError, Unavailable
from tabard.node import NodeReady, NodeSettings, run_node
from tabard.node import NodeService as NodeAgent
from tabard.oauth import (
    AuthorizationServer,
    DirectoryUsers,
    DownstreamJwtSigner,
    RegistryAgents,
    SigningKeys,
    TrustedIssuer,
    VerifiedTokenCache,
    remote_jwks_resolver,
)
from tabard.policy import (
    AgentFacts,
    Approval,
    ApprovalService,
    ApprovalState,
    Approver,
    DelegationMode,
    InstanceFacts,
    KillFacts,
    KillFactsSource,
    PolicyEngine,
    PolicyService,
    UserFacts,
)
from tabard.registry import (
    AgentDefinition,
    AgentEvent,
    AgentIdentityGate,
    AgentNotFoundError,
    AgentQuery,
    AgentService,
    AgentState,
    AgentStore,
    ChangeKind,
    DirectoryPerson,
    EntryLimits,
    EntryService,
    EntrySvidService,
    EventDraft,
    InstanceService,
    InventoryService,
    LifecyclePolicy,
    LocalHookRunner,
    NodeService,
    ObservedAgentStore,
    OrphanDetector,
    PendingChange,
    RetirementService,
    RetirementStep,
    RouteService,
    route_from_mapping,
)
from tabard.server import ServerServices, create_app
from tabard.server.listeners import Endpoints, Listener, serve_listeners
from tabard.server.tls import NodeApiTls
from tabard.signals import (
    Change,
    KillAction,
    KillEntry,
    KillSwitch,
    KillTarget,
    SignalEvent,
    SignalHub,
    SuspendHookRunner,
    TargetKind,
    targets_of,
)
from tabard.spiffe import Bundle, SpiffeIdError, TrustDomain
from tabard.store import (
    Database,
    SqlAdminTokenStore,
    SqlAgentActivity,
    SqlAgentStore,
    SqlApprovalStore,
    SqlAuditStore,
    SqlAuthorityStore,
    SqlEntryStore,
    SqlFindingStore,
    SqlGroupStore,
    SqlInstanceStore,
    SqlInventoryStore,
    SqlJoinTokenStore,
    SqlLeaseStore,
    SqlNodeStore,
    SqlOAuthClientStore,
    SqlOAuthTokenStore,
    SqlPolicyStore,
    SqlResidualUseStore,
    SqlRouteStore,
    SqlScimTokenStore,
    SqlSecretStore,
    SqlSignalStore,
    SqlUserStore,
)
from tabard.vault import EnvelopeCipher, Leases, Vault

__all__ = [
    "AgentServices",
    "ControlPlane",
    "Endpoints",
    "NodeAgent",
    "NodeReady",
    "NodeSettings",
    "RegistryServices",
    "build_agents",
    "build_approvals",
    "build_audit",
    "build_control_plane",
    "build_directory",
    "build_inventory",
    "build_kill_switch",
    "build_oauth",
    "build_policies",
    "build_registry",
    "build_routes",
    "build_vault",
    "open_admin_tokens",
    "open_audit",
    "run_node",
    "serve",
    "write_ready_file",
]

log = logging.getLogger("tabard.app")


@dataclass
class RegistryServices:
    """Entries, nodes (with their attestors), instances, entry SVIDs and join tokens."""

    entries: EntryService
    nodes: NodeService
    instances: InstanceService
    entry_svids: EntrySvidService
    join_tokens: JoinTokens


def build_registry(settings: Settings, db: Database, clock: Clock,
                   authority: Authority) -> RegistryServices:
    a = settings.authority
    limits = EntryLimits(x509_svid_ttl=a.x509_svid_ttl, jwt_svid_ttl=a.jwt_svid_ttl,
                         max_x509_svid_ttl=a.max_x509_svid_ttl,
                         max_jwt_svid_ttl=a.max_jwt_svid_ttl)
    entry_store, instance_store = SqlEntryStore(db), SqlInstanceStore(db)
    # SVIDs and instances only while an agent's definition is active (ARCHITECTURE §5)
    gate = AgentIdentityGate(SqlAgentStore(db), SqlResidualUseStore(db), clock)
    token_store = SqlJoinTokenStore(db)
    attestors = NodeAttestors([JoinTokenAttestor(token_store, clock)])
    return RegistryServices(
        entries=EntryService(entry_store, authority.trust_domain, clock, limits),
        nodes=NodeService(SqlNodeStore(db), attestors, authority, clock,
                          svid_ttl=a.node_svid_ttl),
        instances=InstanceService(instance_store, entry_store, clock, gate=gate),
        entry_svids=EntrySvidService(entry_store, instance_store, authority, clock,
                                     gate=gate),
        join_tokens=JoinTokens(token_store, clock),
    )


def build_inventory(db: Database, clock: Clock) -> InventoryDiscovery:
    """Non-agent NHIs: records in the registry, import and posture in discovery."""
    return InventoryDiscovery(InventoryService(SqlInventoryStore(db), clock), clock)


def build_directory(db: Database, clock: Clock) -> Directory:
    """People (users, groups, roles), their SCIM 2.0 endpoint and its tokens."""
    return Directory.build(SqlUserStore(db), SqlGroupStore(db), SqlScimTokenStore(db), clock)


class _DirectoryOwners:
    """The registry's ``OwnerDirectory`` port over the directory's people
    (``docs/design/agents-and-directory.md``)."""

    def __init__(self, people: DirectoryService) -> None:
        self._people = people

    def find_person(self, user_name: str) -> DirectoryPerson | None:
        person = self._people.find_person(user_name)
        if person is None:
            return None
        return DirectoryPerson(person.user_name, person.active, person.is_person, person.roles)


@dataclass
class AgentServices:
    """Agent definitions and lifecycle, retirement and orphan detection."""

    agents: AgentService
    retirement: RetirementService
    orphans: OrphanDetector
    policy: LifecyclePolicy
    changes: ObservedAgentStore


def build_agents(settings: Settings, db: Database, clock: Clock, registry: RegistryServices,
                 people: DirectoryService, *,
                 policy: LifecyclePolicy | None = None,
                 audit: AuditLog | None = None) -> AgentServices:
    """The agent services over the directory's people; subscribes orphan detection to the
    directory's user status changes. Sanitisation command hooks live in
    ``<data_dir>/hooks``."""
    g = settings.agents
    policy = policy or LifecyclePolicy(
        transfer_deadline=g.transfer_deadline, attestation_interval=g.attestation_interval,
        orphan_action=g.orphan_action, orphan_grace=g.orphan_grace, stale_after=g.stale_after,
        sweep_interval=g.sweep_interval, hook_timeout=g.hook_timeout,
    )
    td = TrustDomain(settings.trust_domain)
    stored: AgentStore = SqlAgentStore(db)
    if audit is not None:
        stored = AuditedAgentStore(stored, audit)
    agent_store, findings = ObservedAgentStore(stored), SqlFindingStore(db)
    activity, residual = SqlAgentActivity(db), SqlResidualUseStore(db)
    owners = _DirectoryOwners(people)
    hooks = LocalHookRunner(settings.data_dir / "hooks", td, timeout=policy.hook_timeout)
    orphans = OrphanDetector(agent_store, findings, activity, owners, clock, policy)
    people.subscribe(orphans)
    return AgentServices(
        agents=AgentService(agent_store, findings, SqlInstanceStore(db), residual, owners,
                            registry.entries, SqlNodeStore(db), hooks, td, clock, policy),
        retirement=RetirementService(agent_store, activity, SqlEntryStore(db), hooks, clock,
                                     findings),
        orphans=orphans,
        policy=policy,
        changes=agent_store,
    )


class _PolicyFacts:
    """The policy engine's facts ports over the registry and the directory."""

    def __init__(self, agents: AgentService, instances: InstanceService,
                 people: DirectoryService, nodes: SqlNodeStore | None = None) -> None:
        self._agents = agents
        self._instances = instances
        self._people = people
        self._nodes = nodes
        self._node_ids: dict[str, str | None] = {}

    def _node(self, node_id: str) -> str | None:
        if self._nodes is None:
            return None
        if node_id not in self._node_ids:  # a node's SPIFFE ID never changes
            record = self._nodes.get(node_id)
            self._node_ids[node_id] = str(record.spiffe_id) if record else None
        return self._node_ids[node_id]

    def agent(self, name: str) -> AgentFacts | None:
        try:
            agent = self._agents.get(name)
        except AgentNotFoundError:
            return None
        pending = frozenset(str(c.payload["tool"])
                            for c in self._agents.changes(name, pending_only=True)
                            if c.kind is ChangeKind.TOOL_ADD)
        return AgentFacts(name=agent.name, state=agent.state.value,
                          delegation=DelegationMode(agent.delegation.value),
                          tools=frozenset(agent.tools), pending_tools=pending,
                          owner=agent.owner, tier=agent.tier.value, read_only=agent.read_only,
                          inbound_blocked=agent.inbound_blocked)

    def instance(self, spiffe_id: str) -> InstanceFacts | None:
        try:
            instance = self._instances.find(spiffe_id)
        except SpiffeIdError:
            return None
        if instance is None or instance.agent is None:
            return None
        return InstanceFacts(str(instance.spiffe_id), instance.agent,
                             retired=instance.retired_at is not None,
                             node=self._node(instance.node_id))

    def user(self, user_name: str) -> UserFacts | None:
        user = self._people.find_user(user_name)
        if user is None:
            return None
        memberships = self._people.memberships(user.id)
        return UserFacts(user.user_name, user.active,
                         frozenset(m.group.display_name for m in memberships),
                         self._people.roles_of(user, memberships))


def build_policies(settings: Settings, db: Database, clock: Clock, registry: RegistryServices,
                   agents: AgentServices, people: DirectoryService,
                   kill: KillFactsSource | None = None) -> PolicyService:
    """The policy engine over the registry's and directory's facts, subscribed to their
    changes, with the newest stored policy epoch loaded."""
    facts = _PolicyFacts(agents.agents, registry.instances, people, SqlNodeStore(db))
    engine = PolicyEngine(facts, facts, trust_domain=settings.trust_domain, kill=kill)
    agents.changes.subscribe(engine.facts_changed)
    people.on_change(engine.facts_changed)
    service = PolicyService(SqlPolicyStore(db), engine, clock)
    service.load()
    return service


@dataclass
class VaultServices:
    """Secrets (sealed under the deployment's KEK) and the leases of issued credentials."""

    secrets: Vault
    leases: Leases


def build_vault(db: Database, clock: Clock, kek: bytes,
                settings: Settings | None = None) -> VaultServices:
    """Secrets and leases; ``[vault]`` (when given) sets the reveal cache and the leases'
    write-behind (``docs/design/gateway.md``, "A request")."""
    if settings is None:
        return VaultServices(Vault(SqlSecretStore(db), EnvelopeCipher(kek), clock),
                             Leases(SqlLeaseStore(db), clock))
    v = settings.vault
    return VaultServices(
        Vault(SqlSecretStore(db), EnvelopeCipher(kek), clock, reveal_ttl=v.reveal_cache_ttl),
        Leases(SqlLeaseStore(db), clock, write_behind=v.lease_write_behind or None,
               queue_size=v.lease_queue_size))


@dataclass
class ControlPlane:
    """The server's services over one database, ready to be served or used directly."""

    settings: Settings
    db: Database
    clock: Clock
    authority: Authority
    admin_tokens: AdminTokenService
    registry: RegistryServices
    inventory: InventoryDiscovery
    directory: Directory
    agents: AgentServices
    policies: PolicyService
    vault: VaultServices
    oauth: AuthorizationServer | None = None
    audit: AuditLog | None = None
    routes: RouteService | None = None
    approvals: ApprovalService | None = None
    kill: KillSwitch | None = None

    def server_services(self) -> ServerServices:
        return ServerServices(
            trust_domain=TrustDomain(self.settings.trust_domain),
            clock=self.clock,
            authority=self.authority,
            admin_tokens=self.admin_tokens,
            database_ready=self.db.ping,
            entries=self.registry.entries,
            nodes=self.registry.nodes,
            instances=self.registry.instances,
            entry_svids=self.registry.entry_svids,
            join_tokens=self.registry.join_tokens,
            agents=self.agents.agents,
            retirement=self.agents.retirement,
            orphans=self.agents.orphans,
            inventory=self.inventory,
            directory=self.directory,
            oauth=self.oauth,
            policies=self.policies,
            secrets=self.vault.secrets,
            leases=self.vault.leases,
            audit=self.audit,
            routes=self.routes,
            approvals=self.approvals,
            kill=self.kill,
        )

    def bootstrap_admin_token(self) -> IssuedAdminToken | None:
        """On first start (no usable admin token), create one; the caller shows it once."""
        if self.admin_tokens.has_active_tokens():
            return None
        return self.admin_tokens.create("bootstrap")

    def close(self) -> None:
        self.vault.leases.close()  # write the leases still queued (write-behind)
        if self.audit is not None:
            self.audit.close()
        self.db.dispose()


def build_oauth(settings: Settings, db: Database, clock: Clock, authority: Authority,
                key_manager: KeyManager, agents: AgentService,
                people: DirectoryService, audit: AuditLog | None = None) -> AuthorizationServer:
    """The OAuth AS: its own signing key (and the demo issuer's under ``tabard dev``) in the
    authority's key manager, records in SQL, agents and users from registry and directory;
    every grant goes to the audit log first (fail closed)."""
    o = settings.oauth
    keys = SigningKeys(key_manager, "oauth-as", clock)
    keys.ensure()
    demo = None
    if o.demo_issuer:
        demo = SigningKeys(key_manager, "oauth-demo", clock)
        demo.ensure()
    trusted = [TrustedIssuer(t.issuer, remote_jwks_resolver(t.jwks_uri), tuple(t.audiences),
                             t.require_directory_user) for t in o.trusted_issuers]
    return AuthorizationServer(
        bundle=authority.bundle, keys=keys, tokens=SqlOAuthTokenStore(db),
        clients=SqlOAuthClientStore(db), agents=RegistryAgents(agents),
        users=DirectoryUsers(people), clock=clock, access_token_ttl=o.access_token_ttl,
        max_chain_depth=o.max_chain_depth, trusted_issuers=trusted,
        allowed_resources=o.allowed_resources, demo_keys=demo, issuer=o.issuer, audit=audit,
        verified_cache=VerifiedTokenCache(window=o.verified_token_window.total_seconds(),
                                          size=o.verified_token_cache_size),
    )


def _upstream(settings: Settings) -> UpstreamCA | None:
    a = settings.authority
    if a.upstream_ca_cert is None and a.upstream_ca_key is None:
        return None
    if a.upstream_ca_cert is None or a.upstream_ca_key is None:
        from tabard.config import ConfigError

        raise ConfigError("authority.upstream_ca_cert and upstream_ca_key go together")
    return UpstreamCA.from_files(a.upstream_ca_cert, a.upstream_ca_key, a.upstream_bundle)


def build_control_plane(settings: Settings, *, clock: Clock | None = None) -> ControlPlane:
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(settings.effective_database_url)
    db.migrate()
    kek = load_kek(os.environ.get("TABARD_KEK"), settings.effective_kek_file, create=True)
    a = settings.authority
    key_manager = DiskKeyManager(settings.data_dir / "keys", kek)
    authority = Authority(
        TrustDomain(settings.trust_domain),
        key_manager,
        SqlAuthorityStore(db),
        clock,
        ca_ttl=a.ca_ttl,
        jwt_key_ttl=a.jwt_key_ttl,
        x509_svid_ttl=a.x509_svid_ttl,
        jwt_svid_ttl=a.jwt_svid_ttl,
        max_x509_svid_ttl=a.max_x509_svid_ttl,
        max_jwt_svid_ttl=a.max_jwt_svid_ttl,
        key_type=KeyType(a.key_type),
        jwt_algorithm=a.jwt_algorithm,
        refresh_hint=int(a.bundle_refresh_hint.total_seconds()),
        upstream=_upstream(settings),
    )
    authority.ensure_initialized()
    registry = build_registry(settings, db, clock, authority)
    directory = build_directory(db, clock)
    audit = build_audit(settings, db, clock, authority)
    agents = build_agents(settings, db, clock, registry, directory.people, audit=audit)
    hub = SignalHub(SqlSignalStore(db))
    hub.load()
    policies = build_policies(settings, db, clock, registry, agents, directory.people,
                              kill=KillListFacts(hub))
    hub.subscribe(policies.engine.facts_changed)  # after the kill list has the event
    oauth = build_oauth(settings, db, clock, authority, key_manager, agents.agents,
                        directory.people, audit=audit)
    vault = build_vault(db, clock, kek, settings)
    signals = _LocalSignalStore(db)
    kill = build_kill_switch(settings, db, clock, hub, agents=agents.agents, audit=audit,
                             leases=vault.leases, tokens_revoked=oauth.forget_verified,
                             store=signals)
    _follow_for_gateway_caches(hub, agents, directory.people, oauth, vault.leases,
                               signals.committed)
    return ControlPlane(settings, db, clock, authority,
                        AdminTokenService(SqlAdminTokenStore(db), clock), registry,
                        inventory=build_inventory(db, clock), directory=directory,
                        agents=agents, oauth=oauth, policies=policies, vault=vault,
                        audit=audit, kill=kill,
                        routes=build_routes(settings, db, clock, vault.secrets),
                        approvals=build_approvals(db, clock, directory.people, audit,
                                                  _agent_owner(agents.agents)))


async def _rotation_loop(plane: ControlPlane) -> None:
    interval = plane.settings.authority.rotation_check_interval.total_seconds()
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(plane.authority.tick)
        except Exception:
            log.exception("authority rotation check failed")


async def _agents_loop(plane: ControlPlane) -> None:
    """Finish the retirements a previous run left unfinished, then sweep for orphans."""
    try:
        await asyncio.to_thread(plane.agents.retirement.resume_all)
    except Exception:
        log.exception("resuming unfinished retirements failed")
    interval = plane.agents.policy.sweep_interval.total_seconds()
    while True:
        try:
            await asyncio.to_thread(plane.agents.orphans.sweep)
        except Exception:
            log.exception("orphan sweep failed")
        await asyncio.sleep(interval)


async def _vault_loop(plane: ControlPlane, interval: float = 60.0) -> None:
    """Destroy secret versions whose rotation grace period is over."""
    while True:
        try:
            await asyncio.to_thread(plane.vault.secrets.sweep)
        except Exception:
            log.exception("vault sweep failed")
        await asyncio.sleep(interval)


def serve(plane: ControlPlane, *, on_ready: Callable[[Endpoints], None] | None = None,
          gateway_ready: Callable[[str], None] | None = None) -> None:
    """Serve the REST API and the node API until SIGINT/SIGTERM; ``on_ready`` once listening.
    With ``gateway_ready``, the gateway listens too (``[gateway]``) and it gets its URL."""
    s = plane.settings.server
    app = create_app(plane.server_services())
    tls = NodeApiTls(plane.authority, plane.clock, plane.settings.data_dir / "tls")
    rest = Listener(s.host, s.port, str(s.tls_cert) if s.tls_cert else None,
                    str(s.tls_key) if s.tls_key else None, s.public_url)
    node_api = Listener(s.host, s.node_api_port, public_url=s.node_api_public_url)
    oauth = plane.oauth
    if oauth is not None:
        user_ready = on_ready

        def on_ready(endpoints: Endpoints) -> None:
            oauth.bind(endpoints.server_url, endpoints.node_api_url)
            if user_ready is not None:
                user_ready(endpoints)

    background = [_rotation_loop(plane), tls.refresh_loop(), _agents_loop(plane),
                  _vault_loop(plane), _signals_loop(plane)]
    if gateway_ready is not None:
        from tabard.gateway.serve import serve_gateway

        g = plane.settings.gateway
        background.append(serve_gateway(build_gateway(plane), g.host, g.port,
                                        public_url=g.public_url, on_ready=gateway_ready))
    asyncio.run(serve_listeners(
        app, rest, node_api=node_api, tls=tls,
        background=background,
        on_ready=on_ready,
    ))


def build_gateway(plane: ControlPlane) -> Any:
    """The identity gateway over the plane's services: routes (configured and stored) and
    approvals from the control plane's services."""
    from tabard.gateway import CredentialBroker, Gateway, GatewayConfig
    from tabard.gateway.bindings import IdSealer

    if plane.audit is None or plane.routes is None:
        raise Unavailable("the gateway needs the audit log and the routes service")
    g = plane.settings.gateway
    agents = plane.agents.agents

    def owner_of(name: str) -> str | None:
        try:
            return agents.get(name).owner
        except NotFound:
            return None

    engine = plane.policies.engine
    return Gateway(
        config=GatewayConfig(audience=g.audience or g.public_url or "",
                             base_url=g.public_url or "", max_body=g.max_body),
        clock=plane.clock, decider=engine, catalog=lambda: engine.compiled.catalog,
        bundle=plane.authority.bundle,
        routes=plane.routes,
        audit=plane.audit,
        credentials=CredentialBroker(
            clock=plane.clock, vault=plane.vault.secrets, leases=plane.vault.leases,
            signer=DownstreamJwtSigner(plane.oauth) if plane.oauth is not None else None),
        tokens=plane.oauth, approvals=plane.approvals, refresh=plane.policies.refresh,
        owner_of=owner_of,
        # session and task ids are sealed under a key every replica derives from the KEK
        id_sealer=IdSealer.from_kek(load_kek(os.environ.get("TABARD_KEK"),
                                             plane.settings.effective_kek_file,
                                             create=False)))


def serve_gateway_process(plane: ControlPlane,
                          on_ready: Callable[[str], None] | None = None) -> None:
    """``tabard gateway``: the gateway alone, over the same database as the server."""
    from tabard.gateway.serve import serve_gateway

    g = plane.settings.gateway
    plane.policies.load()

    async def run() -> None:
        # the kill list follows the signal log (LISTEN/NOTIFY on PostgreSQL, polling as the
        # fallback), so a suspension reaches this gateway's decisions without a restart
        follow = asyncio.create_task(_signals_loop(plane))
        facts = asyncio.create_task(_facts_expiry_loop(plane))
        try:
            await serve_gateway(build_gateway(plane), g.host, g.port, public_url=g.public_url,
                                on_ready=on_ready, handle_signals=True)
        finally:
            follow.cancel()
            facts.cancel()

    _run_fast(run())


def _run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed (the gateway's hot path is bound by the
    event loop's own cost per request), on asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def _facts_expiry_loop(plane: ControlPlane, interval: float = 2.0) -> None:
    """In a process apart from the server, registry and directory changes raise no
    in-process event here: cached decisions live at most ``interval`` (the gateway's
    short-lived local cache; kill-switch signals still act at once)."""
    while True:
        await asyncio.sleep(interval)
        plane.policies.engine.facts_changed()


def write_ready_file(path: Path, values: dict[str, Any]) -> None:
    """Write the ready file atomically with mode 0600 (it holds the dev admin token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def open_admin_tokens(settings: Settings) -> AdminTokenService:
    """Admin tokens straight from the database, for local recovery without the API."""
    db = Database(settings.effective_database_url)
    db.migrate()
    return AdminTokenService(SqlAdminTokenStore(db), SystemClock())


# --- audit log ------------------------------------------------------------------------------


def build_audit(settings: Settings, db: Database, clock: Clock,
                authority: Authority) -> AuditLog:
    """The audit log over the database, its checkpoints signed by an audit key certified by
    this trust domain's authority (``docs/design/audit.md``)."""
    td = TrustDomain(settings.trust_domain)
    return AuditLog(SqlAuditStore(db), clock, trust_domain=td.name,
                    signer=AuditSigner(authority, td, clock), bundles=authority.bundle,
                    timeout=settings.audit.write_timeout.total_seconds())


def open_audit(settings: Settings, database_url: str | None = None) -> AuditLog:
    """The audit log straight from a database, for local verification: no audit key (it
    cannot sign), checkpoints verified against the bundle given to ``verify`` or, without
    one, against the CA certificates the database holds."""
    db = Database(database_url or settings.effective_database_url)
    db.migrate()
    authority_store = SqlAuthorityStore(db)
    td = TrustDomain(settings.trust_domain)

    def bundle() -> Bundle:
        anchors = []
        for record in authority_store.list_keys():
            if record.kind != "x509" or not record.published:
                continue
            pem = (record.certificate_pem or b"") + (record.upstream_chain_pem or b"")
            for cert in x509.load_pem_x509_certificates(pem):
                if cert.issuer == cert.subject:
                    anchors.append(cert)
        return Bundle(td, tuple(anchors))

    return AuditLog(SqlAuditStore(db), SystemClock(), trust_domain=td.name, bundles=bundle)


async def _audit_loop(plane: ControlPlane) -> None:
    """Sign the tree head every ``audit.checkpoint_interval`` when records were added."""
    if plane.audit is None:
        return
    audit = plane.audit
    interval = plane.settings.audit.checkpoint_interval.total_seconds()
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(audit.checkpoint_if_grown)
        except Exception:
            log.exception("audit checkpoint failed")


class AuditedAgentStore:
    """The registry's ``AgentStore`` port, writing every lifecycle event it stores to the
    audit log too (after the agent's own transaction commits: the trail in the registry is
    the source, the audit record its copy; a failed copy is logged)."""

    def __init__(self, inner: AgentStore, audit: AuditLog) -> None:
        self._inner = inner
        self._audit = audit

    def _record(self, agent: AgentDefinition, events: Sequence[EventDraft]) -> None:
        if not events:
            return
        try:
            self._audit.append_many([AuditEvent(
                kind=AuditKind.LIFECYCLE, actor=e.actor or "tabard",
                who=Who(agent=agent.name, owner=agent.owner),
                what=What(operation=f"agent.{e.kind}", target=f"agent:{agent.name}"),
                details={"reason": e.reason, "at": e.at.isoformat(),
                         "from_state": e.from_state.value if e.from_state else None,
                         "to_state": e.to_state.value if e.to_state else None,
                         "details": _jsonable(e.details)},
            ) for e in events])
        except TabardError as exc:
            log.error("lifecycle events of %s were not copied to the audit log: %s",
                      agent.name, exc.message)

    def add(self, agent: AgentDefinition, events: Sequence[EventDraft]) -> AgentDefinition:
        stored = self._inner.add(agent, events)
        self._record(stored, events)
        return stored

    def remove_unused(self, name: str) -> bool:
        return self._inner.remove_unused(name)

    def get(self, name: str) -> AgentDefinition | None:
        return self._inner.get(name)

    def list(self, query: AgentQuery) -> builtins.list[AgentDefinition]:
        return self._inner.list(query)

    def page(self, states: Collection[AgentState], *, after: str = "",
             limit: int = 1000) -> builtins.list[AgentDefinition]:
        return self._inner.page(states, after=after, limit=limit)

    def states(self, names: Collection[str]) -> dict[str, AgentState]:
        return self._inner.states(names)

    def save(self, agent: AgentDefinition, *, expected_version: int,
             events: Sequence[EventDraft] = (), changes: Sequence[PendingChange] = (),
             step: RetirementStep | None = None) -> AgentDefinition:
        stored = self._inner.save(agent, expected_version=expected_version, events=events,
                                  changes=changes, step=step)
        self._record(stored, events)
        return stored

    def events(self, name: str, *, after: int = 0) -> builtins.list[AgentEvent]:
        return self._inner.events(name, after=after)

    def changes(self, name: str, *, pending_only: bool = False) -> builtins.list[PendingChange]:
        return self._inner.changes(name, pending_only=pending_only)

    def steps(self, name: str) -> builtins.list[RetirementStep]:
        return self._inner.steps(name)

    def save_step(self, step: RetirementStep) -> None:
        self._inner.save_step(step)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --- gateway routes and approvals (docs/design/routes-and-approvals.md) ---------------------


class _VaultSecretNames:
    """The routes' ``SecretNames`` port: a route may name only a secret the vault holds."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def secret_exists(self, name: str) -> bool:
        from tabard.vault import SecretNotFoundError

        try:
            self._vault.show(name)
        except SecretNotFoundError:
            return False
        return True


class _DlpProfiles:
    """The routes' ``DlpProfileNames`` port over the DLP scanner's profiles."""

    def dlp_profiles(self) -> builtins.list[str]:
        from tabard.discovery.dlp import PROFILES

        return sorted(PROFILES)


class _DirectoryApprovers:
    """The approvals' ``ApproverDirectory`` port over the directory's people."""

    def __init__(self, people: DirectoryService) -> None:
        self._people = people

    def find_approver(self, user_name: str) -> Approver | None:
        person = self._people.find_person(user_name)
        if person is None:
            return None
        return Approver(person.user_name, person.active, person.is_person, person.roles)


class _AuditedApprovals:
    """The approvals' ``ApprovalRecorder`` port: each request and decision is an
    ``approval`` record (refused when the log cannot take it)."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def _append(self, approval: Approval, operation: str, actor: str,
                outcome: Outcome) -> None:
        self._audit.append(AuditEvent(
            kind=AuditKind.APPROVAL, actor=actor,
            who=Who(agent=approval.agent, instance=approval.instance, user=approval.user),
            what=What(operation=operation, target=f"route:{approval.route}"),
            outcome=outcome,
            details={"approval": approval.id, "state": approval.state.value,
                     "action": approval.action, "resource": approval.resource,
                     "reason": approval.reason, "approver": approval.decided_by,
                     "decision_reason": approval.decision_reason,
                     "expires_at": approval.expires_at.isoformat(),
                     "admin_token": approval.decided_via}))

    def approval_requested(self, approval: Approval) -> None:
        self._append(approval, "approval.request", "tabard", Outcome.PENDING)

    def approval_decided(self, approval: Approval) -> None:
        outcome = (Outcome.SUCCESS if approval.state is ApprovalState.APPROVED
                   else Outcome.DENIED)
        self._append(approval, f"approval.{approval.state.value}",
                     approval.decided_by or "tabard", outcome)



# --- kill switch ----------------------------------------------------------------------------


class KillListFacts:
    """The policy engine's ``KillFactsSource`` over this replica's kill list."""

    def __init__(self, hub: SignalHub) -> None:
        self._list = hub.kill_list

    def restriction(self, *, agent: str, instance: str, user: str | None,
                    node: str | None) -> KillFacts | None:
        found = self._list.restriction(targets_of(spiffe_id=instance, agent=agent, user=user,
                                                  node=node))
        if found is None:
            return None
        s, n = found.suspension, found.narrowing
        return KillFacts(
            suspended=(f"kill switch: {s.target} is suspended"
                       + (f" ({s.reason})" if s.reason else "")) if s is not None else None,
            read_only=n.read_only if n else False,
            blocked_categories=n.blocked_categories if n else frozenset(),
            approval_above=n.approval_above if n else None)


class KillEffects:
    """The kill switch's effects on the registry (lifecycle), the OAuth AS's token records
    and the vault's leases (``tabard.signals.KillEffects``)."""

    def __init__(self, agents: AgentService, tokens: SqlOAuthTokenStore, leases: Leases,
                 clock: Clock, trust_domain: TrustDomain,
                 tokens_revoked: Callable[[], None] | None = None) -> None:
        self._tokens_revoked = tokens_revoked
        self._agents = agents
        self._tokens = tokens
        self._leases = leases
        self._clock = clock
        self._td = trust_domain

    def check(self, target: KillTarget) -> None:
        if target.kind is TargetKind.AGENT:
            self._agents.get(target.value)  # raises AgentNotFoundError

    def suspend_lifecycle(self, agent: str, *, actor: str, reason: str) -> bool:
        if self._agents.get(agent).state not in (AgentState.ACTIVE,
                                                 AgentState.PENDING_RECERTIFICATION):
            return False
        self._agents.suspend(agent, actor=actor, reason=reason)
        return True

    def resume_lifecycle(self, agent: str, *, actor: str, reason: str) -> bool:
        if self._agents.get(agent).state is not AgentState.SUSPENDED:
            return False
        self._agents.resume(agent, actor=actor, reason=reason)
        return True

    def revoke(self, target: KillTarget) -> dict[str, int]:
        try:
            return self._revoke(target)
        finally:
            if self._tokens_revoked is not None:
                self._tokens_revoked()

    def _revoke(self, target: KillTarget) -> dict[str, int]:
        from tabard.store.oauth import revoke_for_principal

        now = self._clock.now()
        if target.kind is TargetKind.AGENT:
            prefix = f"spiffe://{self._td.name}/agent/{target.value}/"
            return {"tokens": revoke_for_principal(self._tokens, prefix=prefix, at=now)
                    + revoke_for_principal(self._tokens, exact=prefix.rstrip("/"), at=now),
                    "leases": self._leases.revoke_agent(target.value)}
        if target.kind is TargetKind.INSTANCE:
            return {"tokens": revoke_for_principal(self._tokens, exact=target.value, at=now),
                    "leases": self._leases.revoke_instance(target.value)}
        if target.kind is TargetKind.USER:
            return {"tokens": revoke_for_principal(self._tokens, subject=target.value,
                                                   at=now)}
        return {}

    def hook_context(self, agent: str) -> dict[str, Any] | None:
        try:
            a = self._agents.get(agent)
        except AgentNotFoundError:
            return None
        return {"name": a.name, "owner": a.owner, "state": a.state.value,
                "spiffe_id_prefix": f"spiffe://{self._td.name}/agent/{a.name}/"}


class KillAuditTrail:
    """The kill switch's ``KillAudit`` port over the audit log (kind ``kill_switch``)."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def record(self, operation: str, target: KillTarget, actor: str,
               details: Mapping[str, Any], outcome: str) -> None:
        if target.kind is TargetKind.AGENT:
            who = Who(agent=target.value)
        elif target.kind is TargetKind.INSTANCE:
            who = Who.of_spiffe_id(target.value)
        elif target.kind is TargetKind.USER:
            who = Who(user=target.value)
        else:
            who = Who(node=target.value)
        self._audit.append(AuditEvent(kind=AuditKind.KILL_SWITCH, actor=actor, who=who,
                                      what=What(operation=operation, target=str(target)),
                                      outcome=outcome, details=dict(details)))



def build_routes(settings: Settings, db: Database, clock: Clock,
                 vault: Vault) -> RouteService:
    """Routes from ``[[gateway.routes]]`` (read-only) over routes in SQL. REST writes are
    recorded by the admin dependency; the service itself records nothing twice."""
    now = clock.now()
    configured = [route_from_mapping(r.model_dump(), at=now, source="config")
                  for r in settings.gateway.routes]
    return RouteService(SqlRouteStore(db), clock, configured=configured,
                        secrets=_VaultSecretNames(vault), dlp_profiles=_DlpProfiles())


def build_approvals(db: Database, clock: Clock, people: DirectoryService,
                    audit: AuditLog | None,
                    owner_of: Callable[[str], str | None] | None = None) -> ApprovalService:
    return ApprovalService(SqlApprovalStore(db), _DirectoryApprovers(people), clock,
                           recorder=_AuditedApprovals(audit) if audit is not None else None,
                           owner_of=owner_of)


def _agent_owner(agents: AgentService) -> Callable[[str], str | None]:
    """The owner of an agent definition, None when there is no such agent."""
    def owner_of(name: str) -> str | None:
        try:
            return agents.get(name).owner
        except NotFound:
            return None
    return owner_of



class _LocalSignalStore(SqlSignalStore):
    """The kill switch's signal store, remembering the events this process committed (its
    own effects revoke for them; see ``_follow_for_gateway_caches``)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.committed: set[int] = set()

    def commit(self, target: KillTarget, at: datetime,
               decide: Callable[[tuple[KillEntry, ...]], Change]) -> SignalEvent:
        event = super().commit(target, at, decide)
        self.committed.add(event.id)
        return event


def build_kill_switch(settings: Settings, db: Database, clock: Clock, hub: SignalHub, *,
                      agents: AgentService, audit: AuditLog | None,
                      leases: Leases,
                      tokens_revoked: Callable[[], None] | None = None,
                      store: SqlSignalStore | None = None) -> KillSwitch:
    """The kill switch over the signal log, with its effects and the suspension hooks of
    ``<data_dir>/hooks/suspend`` (``docs/design/kill-switch.md``); ``tokens_revoked`` is
    called after its effects revoked tokens (the AS drops its verified-token cache)."""
    effects = KillEffects(agents, SqlOAuthTokenStore(db), leases, clock,
                          TrustDomain(settings.trust_domain), tokens_revoked=tokens_revoked)
    hooks = SuspendHookRunner(settings.data_dir / "hooks",
                              timeout=settings.agents.hook_timeout.total_seconds())
    return KillSwitch(store or SqlSignalStore(db), hub, clock,
                      audit=KillAuditTrail(audit) if audit is not None else None,
                      effects=effects, hooks=hooks)


def _follow_for_gateway_caches(hub: SignalHub, agents: AgentServices,
                               people: DirectoryService, oauth: AuthorizationServer,
                               leases: Leases, committed: set[int]) -> None:
    """Keep the gateway's per-request caches honest in this process: the AS's verified
    tokens are dropped on every kill-switch event (from any replica), agent change and
    directory change; on an agent's or instance's suspension made by another process and
    heard from the signal log, the target's leases are revoked again here once this
    process's queued leases are written, which catches a lease this process issued just
    before that process revoked (``tabard.vault.leases``, write-behind). A suspension made
    here (its id in ``committed``) is left to the kill switch's own effects, which flush
    first."""
    agents.changes.subscribe(lambda _name: oauth.forget_verified())
    people.on_change(oauth.forget_verified)

    def revoke_again(target: KillTarget) -> None:
        try:
            if target.kind is TargetKind.AGENT:
                leases.revoke_agent(target.value)
            else:
                leases.revoke_instance(target.value)
        except Exception:
            log.exception("revoking the leases of %s again failed", target)

    def on_event(event: SignalEvent) -> None:
        oauth.forget_verified()
        if event.id in committed:  # each event is published once per process
            committed.discard(event.id)
            return
        if (leases.write_behind and event.action is KillAction.SUSPEND
                and event.target.kind in (TargetKind.AGENT, TargetKind.INSTANCE)):
            threading.Thread(target=revoke_again, args=(event.target,), daemon=True,
                             name="tabard-lease-revoke").start()

    hub.subscribe(on_event)


async def _signals_loop(plane: ControlPlane) -> None:
    """Publish changes made by other replicas (``[signals]``): at once through PostgreSQL
    ``LISTEN``; on SQLite (no notifications between processes) by reading the log's head
    every ``poll_interval`` and the events only when it moved; and, on both, by reading the
    log every ``resync_interval`` as the fallback."""
    kill = plane.kill
    if kill is None:
        return
    s = plane.settings.signals
    resync = s.resync_interval.total_seconds()
    listener = None
    if plane.db.dialect == "postgresql":
        from tabard.store import PgSignalListener

        listener = PgSignalListener(plane.db, kill.hub.poke)
        listener.start()
        poll = resync  # LISTEN pushes; the head need not be polled
    else:
        poll = min(s.poll_interval.total_seconds(), resync)
    loop = asyncio.get_running_loop()
    last_full = loop.time() - resync
    failing = False
    try:
        while True:
            full = loop.time() - last_full >= resync
            if full:
                last_full = loop.time()
            try:
                await asyncio.to_thread(kill.hub.poke if full else kill.hub.check)
                failing = False
            except Exception:
                if not failing:  # once per outage, not at every poll
                    log.exception("reading the signal log failed")
                failing = True
            await asyncio.sleep(poll)
    finally:
        if listener is not None:
            await asyncio.to_thread(listener.stop)
