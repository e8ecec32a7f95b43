"""The tables, as SQLAlchemy Core. Migrations in ``migrations/versions`` create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tabard.store.types import UtcDateTime

__all__ = [
    "admin_tokens",
    "agent_instances",
    "authority_keys",
    "bundle_state",
    "entry_revisions",
    "join_tokens",
    "metadata",
    "nodes",
    "registration_entries",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

authority_keys = Table(
    "authority_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("state", String(12), nullable=False),
    Column("key_id", String(128), nullable=False, unique=True),
    Column("key_type", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("activated_at", UtcDateTime()),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime()),
    Column("certificate_pem", LargeBinary),
    Column("upstream_chain_pem", LargeBinary),
    Column("public_key_pem", LargeBinary, nullable=False),
)
Index("ix_authority_keys_kind_state", authority_keys.c.kind, authority_keys.c.state)

bundle_state = Table(
    "bundle_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sequence", BigInteger, nullable=False),
)

admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
)

# --- registry (migration 0002) ----------------------------------------------------------------

join_tokens = Table(
    "join_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime()),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("spiffe_id", String(2048), nullable=False),
    Column("attestor", String(64), nullable=False),
    Column("attestation_key", String(512)),
    Column("selectors", JSON, nullable=False),
    Column("attested_at", UtcDateTime(), nullable=False),
    Column("svid_expires_at", UtcDateTime()),
    Column("banned_at", UtcDateTime()),
    UniqueConstraint("attestor", "attestation_key", name="uq_nodes_attestation_key"),
)

registration_entries = Table(
    "registration_entries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("spiffe_id", String(2048), nullable=False),
    Column("parent_id", String(2048), nullable=False),
    Column("selectors", JSON, nullable=False),
    # SHA-256 of spiffe_id, parent_id and the sorted selectors: the duplicate rule as a key
    Column("identity_digest", String(64), nullable=False, unique=True),
    Column("x509_svid_ttl", Integer, nullable=False),
    Column("jwt_svid_ttl", Integer, nullable=False),
    Column("dns_names", JSON, nullable=False),
    Column("federates_with", JSON, nullable=False),
    Column("hint", String(256), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_registration_entries_parent_id", registration_entries.c.parent_id)
Index("ix_registration_entries_spiffe_id", registration_entries.c.spiffe_id)

entry_revisions = Table(
    "entry_revisions",
    metadata,
    Column("parent_id", String(2048), primary_key=True),
    Column("revision", BigInteger, nullable=False),
)

agent_instances = Table(
    "agent_instances",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("node_id", String(32), nullable=False),
    Column("entry_id", String(36), nullable=False),
    Column("spiffe_id", String(2048), nullable=False),
    Column("agent", String(255)),
    Column("pid", BigInteger, nullable=False),
    Column("start_time", Double, nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("gid", BigInteger, nullable=False),
    Column("exe_path", Text, nullable=False),
    Column("exe_sha256", String(64), nullable=False),
    Column("selectors", JSON, nullable=False),
    Column("parent_instance_id", String(26)),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime()),
    # one process (node, pid, start time) per entry; the (node, pid) prefix finds pid reuse
    UniqueConstraint("node_id", "pid", "start_time", "entry_id",
                     name="uq_agent_instances_process"),
)
Index("ix_agent_instances_agent_id", agent_instances.c.agent, agent_instances.c.id)
Index("ix_agent_instances_entry_id_id", agent_instances.c.entry_id, agent_instances.c.id)
# lookup by SPIFFE ID (migration 0006); unique because each one ends in its instance's ULID
Index("ix_agent_instances_spiffe_id", agent_instances.c.spiffe_id, unique=True)

# --- NHI inventory (migration 0005) -------------------------------------------------------------

inventory_records = Table(
    "inventory_records",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("source", String(64), nullable=False),
    Column("external_id", String(1024), nullable=False),
    Column("owner", String(255)),
    Column("created_at", UtcDateTime()),
    Column("last_used_at", UtcDateTime()),
    Column("expires_at", UtcDateTime()),
    Column("privileges", JSON, nullable=False),
    Column("notes", Text, nullable=False),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # re-importing a source's record updates it: the key of the upsert
    UniqueConstraint("source", "external_id", name="uq_inventory_records_source_external_id"),
)
Index("ix_inventory_records_owner", inventory_records.c.owner)
__all__ += ["inventory_records"]

# --- directory: users, groups, SCIM tokens (migration 0004) -----------------------------------

directory_users = Table(
    "directory_users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_name", String(255), nullable=False),
    # casefolded userName: unique, and how a name is looked up (userName is not case-exact)
    Column("user_name_key", String(1024), nullable=False, unique=True),
    Column("active", Boolean, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_directory_users_created_at_id", directory_users.c.created_at, directory_users.c.id)

directory_groups = Table(
    "directory_groups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("display_name", String(255), nullable=False),
    Column("display_name_key", String(1024), nullable=False, unique=True),
    Column("attributes", JSON, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_directory_groups_created_at_id", directory_groups.c.created_at, directory_groups.c.id)

# members in two tables so that each has a real foreign key: a member that is deleted
# leaves its groups in the same transaction; position keeps the order the client gave
directory_group_users = Table(
    "directory_group_users",
    metadata,
    Column("group_id", String(36), ForeignKey("directory_groups.id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", String(36), ForeignKey("directory_users.id", ondelete="CASCADE"),
           primary_key=True),
    Column("position", Integer, nullable=False),
    Column("display", Text),
)
Index("ix_directory_group_users_user_id", directory_group_users.c.user_id)

directory_group_groups = Table(
    "directory_group_groups",
    metadata,
    Column("group_id", String(36), ForeignKey("directory_groups.id", ondelete="CASCADE"),
           primary_key=True),
    Column("member_group_id", String(36),
           ForeignKey("directory_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("display", Text),
)
Index("ix_directory_group_groups_member_group_id", directory_group_groups.c.member_group_id)

scim_tokens = Table(
    "scim_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
)
__all__ += ["directory_group_groups", "directory_group_users", "directory_groups",
            "directory_users", "scim_tokens"]

# --- agents (migration 0003) --------------------------------------------------------------------

agents = Table(
    "agents",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("model_provider", String(128), nullable=False),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("hosting", String(255), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("tools", JSON, nullable=False),
    Column("image_digest", String(200), nullable=False),
    Column("system_prompt_digest", String(200)),
    Column("config", JSON),
    Column("checksum", String(64), nullable=False),
    Column("policy_bindings", JSON, nullable=False),
    Column("delegation", String(32), nullable=False),
    Column("entry_id", String(36)),
    Column("sanitization_hooks", JSON, nullable=False),
    Column("state", String(32), nullable=False),
    Column("state_changed_at", UtcDateTime(), nullable=False),
    Column("read_only", Boolean, nullable=False),
    Column("inbound_blocked", Boolean, nullable=False),
    Column("last_attested_by", String(255)),
    Column("last_attested_at", UtcDateTime()),
    Column("attestation_due_at", UtcDateTime()),
    Column("transferred_at", UtcDateTime()),
    Column("seal", String(64)),
    Column("sealed_through", Integer),
    Column("sealed_at", UtcDateTime()),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_agents_owner", agents.c.owner)
Index("ix_agents_state", agents.c.state)

agent_events = Table(
    "agent_events",
    metadata,
    Column("agent", String(63), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(48), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32)),
    Column("actor", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("details", JSON, nullable=False),
)

agent_changes = Table(
    "agent_changes",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("agent", String(63), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("requested_by", String(255), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(255)),
    Column("decided_at", UtcDateTime()),
    Column("reason", Text, nullable=False),
)
Index("ix_agent_changes_agent_status", agent_changes.c.agent, agent_changes.c.status)

agent_findings = Table(
    "agent_findings",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("agent", String(63), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("action", String(16), nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("acted_at", UtcDateTime()),
    Column("resolved_at", UtcDateTime()),
    # 'y' while open, NULL once resolved: at most one open finding per agent and kind
    Column("open_marker", String(1)),
    UniqueConstraint("agent", "kind", "open_marker", name="uq_agent_findings_open"),
)
Index("ix_agent_findings_open_marker", agent_findings.c.open_marker)

agent_retirement_steps = Table(
    "agent_retirement_steps",
    metadata,
    Column("agent", String(63), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("name", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", UtcDateTime()),
    Column("completed_at", UtcDateTime()),
    Column("result", JSON, nullable=False),
    Column("error", Text),
)

agent_residual_use = Table(
    "agent_residual_use",
    metadata,
    # SHA-256 of (agent, kind, node, SPIFFE ID): repeated attempts add to one row
    Column("id", String(64), primary_key=True),
    Column("agent", String(63), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("node_id", String(32)),
    Column("spiffe_id", String(2048), nullable=False),
    Column("entry_id", String(36)),
    Column("first_at", UtcDateTime(), nullable=False),
    Column("last_at", UtcDateTime(), nullable=False),
    Column("count", BigInteger, nullable=False),
)
Index("ix_agent_residual_use_agent", agent_residual_use.c.agent)
__all__ += ["agent_changes", "agent_events", "agent_findings", "agent_residual_use",
            "agent_retirement_steps", "agents"]

oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("subject", String(2048), nullable=False),
    Column("client_id", String(2048), nullable=False),
    Column("audience", JSON, nullable=False),
    Column("scope", Text),
    Column("act", JSON),
    Column("checksum", String(80)),
    Column("parent_jti", String(64)),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
)
Index("ix_oauth_tokens_parent_jti", oauth_tokens.c.parent_jti)
Index("ix_oauth_tokens_expires_at", oauth_tokens.c.expires_at)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(2048), primary_key=True),
    Column("client_name", String(200), nullable=False),
    Column("auth_method", String(32), nullable=False),
    Column("grant_types", JSON, nullable=False),
    Column("scope", Text),
    Column("jwks", JSON),
    Column("software_id", String(255)),
    Column("software_version", String(255)),
    Column("created_at", UtcDateTime(), nullable=False),
)
__all__ += ["oauth_clients", "oauth_tokens"]
# --- policy epochs (tabard.policy) --------------------------------------------------------------

policy_files = Table(
    "policy_files",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("content", Text, nullable=False),
)

policy_epochs = Table(
    "policy_epochs",
    metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("actor", String(255), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("files", JSON, nullable=False),
)
__all__ += ["policy_epochs", "policy_files"]
vault_secrets = Table(
    "vault_secrets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text, nullable=False),
    Column("current_version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime()),
)

vault_secret_versions = Table(
    "vault_secret_versions",
    metadata,
    Column("name", String(128), ForeignKey("vault_secrets.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("destroyed_at", UtcDateTime()),
    # the envelope (tabard.vault.envelope); all NULL once the version is destroyed
    Column("algorithm", String(16)),
    Column("kek_id", String(32)),
    Column("nonce", LargeBinary),
    Column("ciphertext", LargeBinary),
    Column("key_nonce", LargeBinary),
    Column("wrapped_key", LargeBinary),
)
Index("ix_vault_secret_versions_expires_at", vault_secret_versions.c.expires_at)

vault_leases = Table(
    "vault_leases",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("route", String(255), nullable=False),
    Column("agent", String(63)),
    Column("agent_instance", String(2048)),
    Column("user_name", String(255)),
    Column("secret_name", String(128)),
    Column("secret_version", Integer),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
)
Index("ix_vault_leases_agent", vault_leases.c.agent)
Index("ix_vault_leases_agent_instance", vault_leases.c.agent_instance)
Index("ix_vault_leases_issued_at", vault_leases.c.issued_at)
__all__ += ["vault_leases", "vault_secret_versions", "vault_secrets"]
# --- audit log (tabard.audit) ---------------------------------------------------------------
# seq is INTEGER on SQLite so that it is the rowid: rows are stored in seq order and a scan
# reads them in place.
_AuditSeq = BigInteger().with_variant(Integer(), "sqlite")

audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", _AuditSeq, primary_key=True, autoincrement=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
)
Index("ix_audit_records_recorded_at", audit_records.c.recorded_at)

# trace lookups: who a record names (agent:, instance:, user:); outside the hash chain. Each
# name is stored once and numbered; a row of audit_trace lists the records of one append
# batch that name a subject: its first seq, and in "more" the others as big-endian 16-bit
# offsets from it (a clustered key: WITHOUT ROWID on SQLite). Migration 0014.
audit_subject_names = Table(
    "audit_subject_names",
    metadata,
    Column("id", _AuditSeq, primary_key=True, autoincrement=True),
    Column("subject", String(512), nullable=False, unique=True),
)

audit_trace = Table(
    "audit_trace",
    metadata,
    Column("subject_id", _AuditSeq, primary_key=True, autoincrement=False),
    Column("seq", _AuditSeq, primary_key=True, autoincrement=False),
    Column("more", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("tree_size", _AuditSeq, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("document", Text, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)
__all__ += ["audit_checkpoints", "audit_records", "audit_subject_names", "audit_trace"]
# --- gateway routes (tabard.registry.routes) and approvals (tabard.policy.approvals) ---------
gateway_routes = Table(
    "gateway_routes",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("protocol", String(8), nullable=False),
    Column("upstream", String(2048), nullable=False),
    Column("audience", String(2048)),
    Column("credential", JSON, nullable=False),  # names of secrets, never values
    Column("dlp_profile", String(64)),
    Column("dlp_action", String(16), nullable=False),
    Column("timeout", Double, nullable=False),
    Column("strip_headers", JSON, nullable=False),
    Column("approval_timeout", Double, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # dual-token mode (issuers whose user tokens the route accepts), A2A webhook prefixes
    Column("user_token_issuers", JSON, nullable=False),
    Column("push_urls", JSON, nullable=False),
)

# one row (id 1): bumped in the transaction of every route write, read by gateway caches
gateway_route_version = Table(
    "gateway_route_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("agent", String(63), nullable=False),
    Column("instance", String(2048), nullable=False),
    Column("user_name", String(255)),
    Column("action", String(255), nullable=False),
    Column("resource", String(2048), nullable=False),
    Column("route", String(63), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("decided_by", String(255)),
    Column("decided_at", UtcDateTime()),
    Column("decision_reason", Text, nullable=False),
)
Index("ix_approvals_requested_at", approvals.c.requested_at)
__all__ += ["approvals", "gateway_route_version", "gateway_routes"]

# --- kill switch and its signal log (tabard.signals) -------------------------------------------

_SignalId = BigInteger().with_variant(Integer(), "sqlite")

# one row: the last event id. Every change updates it first, which serialises writers on
# both backends and so assigns ids in commit order.
signal_head = Table(
    "signal_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_event_id", _SignalId, nullable=False),
)

signal_events = Table(
    "signal_events",
    metadata,
    Column("id", _SignalId, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("action", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", String(2048), nullable=False),
    Column("body", Text, nullable=False),
)

kill_entries = Table(
    "kill_entries",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("target", String(2048), primary_key=True),
    Column("action", String(16), primary_key=True),
    Column("body", Text, nullable=False),
)
__all__ += ["kill_entries", "signal_events", "signal_head"]
