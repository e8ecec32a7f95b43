"""Registry: join tokens, nodes, registration entries with per-parent revisions, instances.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "join_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_join_tokens"),
        sa.UniqueConstraint("digest", name="uq_join_tokens_digest"),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("attestor", sa.String(64), nullable=False),
        sa.Column("attestation_key", sa.String(512)),
        sa.Column("selectors", sa.JSON, nullable=False),
        sa.Column("attested_at", UtcDateTime(), nullable=False),
        sa.Column("svid_expires_at", UtcDateTime()),
        sa.Column("banned_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
        sa.UniqueConstraint("attestor", "attestation_key", name="uq_nodes_attestation_key"),
    )
    op.create_table(
        "registration_entries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("parent_id", sa.String(2048), nullable=False),
        sa.Column("selectors", sa.JSON, nullable=False),
        sa.Column("identity_digest", sa.String(64), nullable=False),
        sa.Column("x509_svid_ttl", sa.Integer, nullable=False),
        sa.Column("jwt_svid_ttl", sa.Integer, nullable=False),
        sa.Column("dns_names", sa.JSON, nullable=False),
        sa.Column("federates_with", sa.JSON, nullable=False),
        sa.Column("hint", sa.String(256), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registration_entries"),
        sa.UniqueConstraint("identity_digest",
                            name="uq_registration_entries_identity_digest"),
    )
    op.create_index("ix_registration_entries_parent_id", "registration_entries", ["parent_id"])
    op.create_index("ix_registration_entries_spiffe_id", "registration_entries", ["spiffe_id"])
    op.create_table(
        "entry_revisions",
        sa.Column("parent_id", sa.String(2048), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("parent_id", name="pk_entry_revisions"),
    )
    op.create_table(
        "agent_instances",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("agent", sa.String(255)),
        sa.Column("pid", sa.BigInteger, nullable=False),
        sa.Column("start_time", sa.Double, nullable=False),
        sa.Column("uid", sa.BigInteger, nullable=False),
        sa.Column("gid", sa.BigInteger, nullable=False),
        sa.Column("exe_path", sa.Text, nullable=False),
        sa.Column("exe_sha256", sa.String(64), nullable=False),
        sa.Column("selectors", sa.JSON, nullable=False),
        sa.Column("parent_instance_id", sa.String(26)),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("retired_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_agent_instances"),
        sa.UniqueConstraint("node_id", "pid", "start_time", "entry_id",
                            name="uq_agent_instances_process"),
    )
    op.create_index("ix_agent_instances_agent_id", "agent_instances", ["agent", "id"])
    op.create_index("ix_agent_instances_entry_id_id", "agent_instances", ["entry_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_agent_instances_entry_id_id", "agent_instances")
    op.drop_index("ix_agent_instances_agent_id", "agent_instances")
    op.drop_table("agent_instances")
    op.drop_table("entry_revisions")
    op.drop_index("ix_registration_entries_spiffe_id", "registration_entries")
    op.drop_index("ix_registration_entries_parent_id", "registration_entries")
    op.drop_table("registration_entries")
    op.drop_table("nodes")
    op.drop_table("join_tokens")
