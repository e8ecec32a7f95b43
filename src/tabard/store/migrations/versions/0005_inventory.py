"""NHI inventory: non-agent identities imported from their sources, unique per source.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inventory_records",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(1024), nullable=False),
        sa.Column("owner", sa.String(255)),
        sa.Column("created_at", UtcDateTime()),
        sa.Column("last_used_at", UtcDateTime()),
        sa.Column("expires_at", UtcDateTime()),
        sa.Column("privileges", sa.JSON, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inventory_records"),
        sa.UniqueConstraint("source", "external_id",
                            name="uq_inventory_records_source_external_id"),
    )
    op.create_index("ix_inventory_records_owner", "inventory_records", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_inventory_records_owner", "inventory_records")
    op.drop_table("inventory_records")
