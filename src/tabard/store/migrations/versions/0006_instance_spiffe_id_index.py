"""Agent instances: a unique index on ``spiffe_id``, for the lookup by SPIFFE ID.

An instance's SPIFFE ID is its entry's template resolved with the instance's own ULID, so no
two instances share one; unique (not just indexed) so that the database keeps it that way.
Building it reads the table once; on a large PostgreSQL table writes to it wait meanwhile.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agent_instances_spiffe_id", "agent_instances", ["spiffe_id"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ix_agent_instances_spiffe_id", "agent_instances")
