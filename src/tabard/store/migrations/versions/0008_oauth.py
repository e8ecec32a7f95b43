"""OAuth authorization server: issued-token records (introspection, revocation down the
exchange tree) and registered clients.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(2048), nullable=False),
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("audience", sa.JSON, nullable=False),
        sa.Column("scope", sa.Text),
        sa.Column("act", sa.JSON),
        sa.Column("checksum", sa.String(80)),
        sa.Column("parent_jti", sa.String(64)),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("jti", name="pk_oauth_tokens"),
    )
    op.create_index("ix_oauth_tokens_parent_jti", "oauth_tokens", ["parent_jti"])
    op.create_index("ix_oauth_tokens_expires_at", "oauth_tokens", ["expires_at"])
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(2048), nullable=False),
        sa.Column("client_name", sa.String(200), nullable=False),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("grant_types", sa.JSON, nullable=False),
        sa.Column("scope", sa.Text),
        sa.Column("jwks", sa.JSON),
        sa.Column("software_id", sa.String(255)),
        sa.Column("software_version", sa.String(255)),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
    )


def downgrade() -> None:
    op.drop_table("oauth_clients")
    op.drop_index("ix_oauth_tokens_expires_at", "oauth_tokens")
    op.drop_index("ix_oauth_tokens_parent_jti", "oauth_tokens")
    op.drop_table("oauth_tokens")
