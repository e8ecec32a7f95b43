"""Audit log: records (append-only, hash-chained), their trace index, signed checkpoints.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", _seq, nullable=False, autoincrement=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_records"),
    )
    op.create_index("ix_audit_records_recorded_at", "audit_records", ["recorded_at"])
    op.create_table(
        "audit_subjects",
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("seq", _seq, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("subject", "seq", name="pk_audit_subjects"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", _seq, nullable=False, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name="pk_audit_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_subjects")
    op.drop_index("ix_audit_records_recorded_at", "audit_records")
    op.drop_table("audit_records")
