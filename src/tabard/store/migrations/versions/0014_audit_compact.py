"""Audit trace index, compact: each subject name stored once and numbered
(``audit_subject_names``); a row of ``audit_trace`` (WITHOUT ROWID on SQLite) lists the
records of one append batch that name a subject: its first ``seq``, and in ``more`` the
others as big-endian 16-bit offsets from it. Existing ``audit_subjects`` rows are carried
over (a row each, ``more`` empty); the records themselves are unchanged, so an upgraded log
verifies as before.

Revision ID: 0014
Revises: 0013
"""

import struct

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
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
        sa.Column("more", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("subject_id", "seq", name="pk_audit_trace"),
        sqlite_with_rowid=False,
    )
    op.execute("INSERT INTO audit_subject_names (subject) "
               "SELECT DISTINCT subject FROM audit_subjects ORDER BY subject")
    empty = "x''" if op.get_bind().dialect.name == "sqlite" else "''::bytea"
    op.execute(f"INSERT INTO audit_trace (subject_id, seq, more) "  # noqa: S608 -- constant
               f"SELECT n.id, s.seq, {empty} FROM audit_subjects s "
               f"JOIN audit_subject_names n ON n.subject = s.subject")
    op.drop_table("audit_subjects")


def downgrade() -> None:
    op.create_table(
        "audit_subjects",
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("seq", _seq, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("subject", "seq", name="pk_audit_subjects"),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT n.subject, t.seq, t.more FROM audit_trace t "
        "JOIN audit_subject_names n ON n.id = t.subject_id")).all()
    pairs = [{"subject": subject, "seq": seq + offset}
             for subject, seq, more in rows
             for offset in (0, *struct.unpack(f">{len(more) // 2}H", bytes(more)))]
    for i in range(0, len(pairs), 1000):
        bind.execute(sa.text("INSERT INTO audit_subjects (subject, seq) VALUES (:subject, :seq)"),
                     pairs[i:i + 1000])
    op.drop_table("audit_trace")
    op.drop_table("audit_subject_names")
