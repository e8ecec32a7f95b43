"""Gateway routes (with a change counter for caches) and approvals of held calls.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_routes",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("upstream", sa.String(2048), nullable=False),
        sa.Column("audience", sa.String(2048)),
        sa.Column("credential", sa.JSON, nullable=False),
        sa.Column("dlp_profile", sa.String(64)),
        sa.Column("dlp_action", sa.String(16), nullable=False),
        sa.Column("timeout", sa.Double, nullable=False),
        sa.Column("strip_headers", sa.JSON, nullable=False),
        sa.Column("approval_timeout", sa.Double, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_gateway_routes"),
    )
    op.create_table(
        "gateway_route_version",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_route_version"),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("instance", sa.String(2048), nullable=False),
        sa.Column("user_name", sa.String(255)),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(2048), nullable=False),
        sa.Column("route", sa.String(63), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_at", UtcDateTime()),
        sa.Column("decision_reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
    )
    op.create_index("ix_approvals_requested_at", "approvals", ["requested_at"])


def downgrade() -> None:
    op.drop_index("ix_approvals_requested_at", table_name="approvals")
    op.drop_table("approvals")
    op.drop_table("gateway_route_version")
    op.drop_table("gateway_routes")
