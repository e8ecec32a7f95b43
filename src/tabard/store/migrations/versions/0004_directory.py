"""Directory: users, groups and their members (SCIM 2.0 provisioning), SCIM tokens.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from tabard.store.types import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _members(name: str, member_column: str, member_table: str) -> None:
    op.create_table(
        name,
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column(member_column, sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("display", sa.Text),
        sa.PrimaryKeyConstraint("group_id", member_column, name=f"pk_{name}"),
        sa.ForeignKeyConstraint(["group_id"], ["directory_groups.id"], ondelete="CASCADE",
                                name=f"fk_{name}_group_id_directory_groups"),
        sa.ForeignKeyConstraint([member_column], [f"{member_table}.id"], ondelete="CASCADE",
                                name=f"fk_{name}_{member_column}_{member_table}"),
    )
    op.create_index(f"ix_{name}_{member_column}", name, [member_column])


def upgrade() -> None:
    op.create_table(
        "directory_users",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("user_name_key", sa.String(1024), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_directory_users"),
        sa.UniqueConstraint("user_name_key", name="uq_directory_users_user_name_key"),
    )
    op.create_index("ix_directory_users_created_at_id", "directory_users", ["created_at", "id"])
    op.create_table(
        "directory_groups",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("display_name_key", sa.String(1024), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_directory_groups"),
        sa.UniqueConstraint("display_name_key", name="uq_directory_groups_display_name_key"),
    )
    op.create_index("ix_directory_groups_created_at_id", "directory_groups",
                    ["created_at", "id"])
    _members("directory_group_users", "user_id", "directory_users")
    _members("directory_group_groups", "member_group_id", "directory_groups")
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_used_at", UtcDateTime()),
        sa.Column("revoked_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_scim_tokens"),
        sa.UniqueConstraint("digest", name="uq_scim_tokens_digest"),
    )


def downgrade() -> None:
    op.drop_table("scim_tokens")
    op.drop_index("ix_directory_group_groups_member_group_id", "directory_group_groups")
    op.drop_table("directory_group_groups")
    op.drop_index("ix_directory_group_users_user_id", "directory_group_users")
    op.drop_table("directory_group_users")
    op.drop_index("ix_directory_groups_created_at_id", "directory_groups")
    op.drop_table("directory_groups")
    op.drop_index("ix_directory_users_created_at_id", "directory_users")
    op.drop_table("directory_users")
