"""Policy epochs: the current policy bundle's files and one history row per accepted change.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_files",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_policy_files"),
    )
    op.create_table(
        "policy_epochs",
        sa.Column("epoch", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("epoch", name="pk_policy_epochs"),
    )


def downgrade() -> None:
    op.drop_table("policy_epochs")
    op.drop_table("policy_files")
