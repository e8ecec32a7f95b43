"""Authority keys, bundle sequence and admin tokens.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authority_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("key_type", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("activated_at", UtcDateTime()),
        sa.Column("not_after", UtcDateTime(), nullable=False),
        sa.Column("retired_at", UtcDateTime()),
        sa.Column("certificate_pem", sa.LargeBinary),
        sa.Column("upstream_chain_pem", sa.LargeBinary),
        sa.Column("public_key_pem", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authority_keys"),
        sa.UniqueConstraint("key_id", name="uq_authority_keys_key_id"),
    )
    op.create_index("ix_authority_keys_kind_state", "authority_keys", ["kind", "state"])
    bundle_state = op.create_table(
        "bundle_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bundle_state"),
    )
    op.bulk_insert(bundle_state, [{"id": 1, "sequence": 0}])
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_used_at", UtcDateTime()),
        sa.Column("revoked_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_admin_tokens"),
        sa.UniqueConstraint("digest", name="uq_admin_tokens_digest"),
    )


def downgrade() -> None:
    op.drop_table("admin_tokens")
    op.drop_table("bundle_state")
    op.drop_index("ix_authority_keys_kind_state", "authority_keys")
    op.drop_table("authority_keys")
