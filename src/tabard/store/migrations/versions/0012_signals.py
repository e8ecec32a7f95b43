"""Kill switch: the entries in force, the signal log and its head (the last event id).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    head = op.create_table(
        "signal_head",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("last_event_id", _id, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signal_head"),
    )
    op.bulk_insert(head, [{"id": 1, "last_event_id": 0}])
    op.create_table(
        "signal_events",
        sa.Column("id", _id, nullable=False, autoincrement=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signal_events"),
    )
    op.create_table(
        "kill_entries",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("kind", "target", "action", name="pk_kill_entries"),
    )


def downgrade() -> None:
    op.drop_table("kill_entries")
    op.drop_table("signal_events")
    op.drop_table("signal_head")
