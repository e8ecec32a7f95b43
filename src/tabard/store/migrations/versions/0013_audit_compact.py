"""Audit trace index, compact: each subject name stored once and numbered
(``audit_subject_names``), a record's trace rows two integers (``audit_trace``, WITHOUT ROWID
on SQLite). Existing ``audit_subjects`` rows are carried over; the records themselves are
unchanged, so an upgraded log verifies as before.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_subject_names",
        sa.Column("id", _seq, nullable=False, autoincrement=True),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_subject_names"),
        sa.UniqueConstraint("subject", name="uq_audit_subject_names_subject"),
    )
    op.create_table(
        "audit_trace",
        sa.Column("subject_id", _seq, nullable=False, autoincrement=False),
        sa.Column("seq", _seq, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("subject_id", "seq", name="pk_audit_trace"),
        sqlite_with_rowid=False,
    )
    op.execute("INSERT INTO audit_subject_names (subject) "
               "SELECT DISTINCT subject FROM audit_subjects ORDER BY subject")
    op.execute("INSERT INTO audit_trace (subject_id, seq) "
               "SELECT n.id, s.seq FROM audit_subjects s "
               "JOIN audit_subject_names n ON n.subject = s.subject")
    op.drop_table("audit_subjects")


def downgrade() -> None:
    op.create_table(
        "audit_subjects",
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("seq", _seq, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("subject", "seq", name="pk_audit_subjects"),
    )
    op.execute("INSERT INTO audit_subjects (subject, seq) "
               "SELECT n.subject, t.seq FROM audit_trace t "
               "JOIN audit_subject_names n ON n.id = t.subject_id")
    op.drop_table("audit_trace")
    op.drop_table("audit_subject_names")
