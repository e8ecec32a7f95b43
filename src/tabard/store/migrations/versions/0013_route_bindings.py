"""Gateway routes: the issuers whose user tokens a route accepts (dual-token mode, opt-in)
and the URL prefixes its A2A push-notification webhooks must start with.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_routes") as batch:
        batch.add_column(sa.Column("user_token_issuers", sa.JSON, nullable=False,
                                   server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("push_urls", sa.JSON, nullable=False,
                                   server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("gateway_routes") as batch:
        batch.drop_column("push_urls")
        batch.drop_column("user_token_issuers")
