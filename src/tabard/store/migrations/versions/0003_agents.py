"""Agents: definitions, lifecycle events, pending changes, findings, retirement steps and
residual use of retired identities.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("model_provider", sa.String(128), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("hosting", sa.String(255), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("tools", sa.JSON, nullable=False),
        sa.Column("image_digest", sa.String(200), nullable=False),
        sa.Column("system_prompt_digest", sa.String(200)),
        sa.Column("config", sa.JSON),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("policy_bindings", sa.JSON, nullable=False),
        sa.Column("delegation", sa.String(32), nullable=False),
        sa.Column("entry_id", sa.String(36)),
        sa.Column("sanitization_hooks", sa.JSON, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("state_changed_at", UtcDateTime(), nullable=False),
        sa.Column("read_only", sa.Boolean, nullable=False),
        sa.Column("inbound_blocked", sa.Boolean, nullable=False),
        sa.Column("last_attested_by", sa.String(255)),
        sa.Column("last_attested_at", UtcDateTime()),
        sa.Column("attestation_due_at", UtcDateTime()),
        sa.Column("transferred_at", UtcDateTime()),
        sa.Column("seal", sa.String(64)),
        sa.Column("sealed_through", sa.Integer),
        sa.Column("sealed_at", UtcDateTime()),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_agents"),
    )
    op.create_index("ix_agents_owner", "agents", ["owner"])
    op.create_index("ix_agents_state", "agents", ["state"])
    op.create_table(
        "agent_events",
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32)),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("agent", "seq", name="pk_agent_events"),
    )
    op.create_table(
        "agent_changes",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_at", UtcDateTime()),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_changes"),
    )
    op.create_index("ix_agent_changes_agent_status", "agent_changes", ["agent", "status"])
    op.create_table(
        "agent_findings",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("acted_at", UtcDateTime()),
        sa.Column("resolved_at", UtcDateTime()),
        # 'y' while open, NULL once resolved: at most one open finding per agent and kind
        sa.Column("open_marker", sa.String(1)),
        sa.PrimaryKeyConstraint("id", name="pk_agent_findings"),
        sa.UniqueConstraint("agent", "kind", "open_marker", name="uq_agent_findings_open"),
    )
    op.create_index("ix_agent_findings_open_marker", "agent_findings", ["open_marker"])
    op.create_table(
        "agent_retirement_steps",
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("started_at", UtcDateTime()),
        sa.Column("completed_at", UtcDateTime()),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("agent", "step", name="pk_agent_retirement_steps"),
    )
    op.create_table(
        "agent_residual_use",
        # SHA-256 of (agent, kind, node, SPIFFE ID): repeated attempts add to one row
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("node_id", sa.String(32)),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("entry_id", sa.String(36)),
        sa.Column("first_at", UtcDateTime(), nullable=False),
        sa.Column("last_at", UtcDateTime(), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_residual_use"),
    )
    op.create_index("ix_agent_residual_use_agent", "agent_residual_use", ["agent"])


def downgrade() -> None:
    op.drop_index("ix_agent_residual_use_agent", "agent_residual_use")
    op.drop_table("agent_residual_use")
    op.drop_table("agent_retirement_steps")
    op.drop_index("ix_agent_findings_open_marker", "agent_findings")
    op.drop_table("agent_findings")
    op.drop_index("ix_agent_changes_agent_status", "agent_changes")
    op.drop_table("agent_changes")
    op.drop_table("agent_events")
    op.drop_index("ix_agents_state", "agents")
    op.drop_index("ix_agents_owner", "agents")
    op.drop_table("agents")
