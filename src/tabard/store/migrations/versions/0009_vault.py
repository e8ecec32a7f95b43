"""Vault: secrets, their encrypted versions (envelopes only, never a value) and leases.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vault_secrets",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("name", name="pk_vault_secrets"),
    )
    op.create_table(
        "vault_secret_versions",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime()),
        sa.Column("destroyed_at", UtcDateTime()),
        sa.Column("algorithm", sa.String(16)),
        sa.Column("kek_id", sa.String(32)),
        sa.Column("nonce", sa.LargeBinary),
        sa.Column("ciphertext", sa.LargeBinary),
        sa.Column("key_nonce", sa.LargeBinary),
        sa.Column("wrapped_key", sa.LargeBinary),
        sa.PrimaryKeyConstraint("name", "version", name="pk_vault_secret_versions"),
        sa.ForeignKeyConstraint(["name"], ["vault_secrets.name"],
                                name="fk_vault_secret_versions_name_vault_secrets"),
    )
    op.create_index("ix_vault_secret_versions_expires_at", "vault_secret_versions",
                    ["expires_at"])
    op.create_table(
        "vault_leases",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("route", sa.String(255), nullable=False),
        sa.Column("agent", sa.String(63)),
        sa.Column("agent_instance", sa.String(2048)),
        sa.Column("user_name", sa.String(255)),
        sa.Column("secret_name", sa.String(128)),
        sa.Column("secret_version", sa.Integer),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime()),
        sa.Column("revoked_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_vault_leases"),
    )
    op.create_index("ix_vault_leases_agent", "vault_leases", ["agent"])
    op.create_index("ix_vault_leases_agent_instance", "vault_leases", ["agent_instance"])
    op.create_index("ix_vault_leases_issued_at", "vault_leases", ["issued_at"])


def downgrade() -> None:
    op.drop_table("vault_leases")
    op.drop_index("ix_vault_secret_versions_expires_at", "vault_secret_versions")
    op.drop_table("vault_secret_versions")
    op.drop_table("vault_secrets")
