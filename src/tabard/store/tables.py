"""The tables, as SQLAlchemy Core. Migrations in ``migrations/versions`` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

from tabard.store.types import UtcDateTime

__all__ = ["admin_tokens", "authority_keys", "bundle_state", "metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

authority_keys = Table(
    "authority_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("state", String(12), nullable=False),
    Column("key_id", String(128), nullable=False, unique=True),
    Column("key_type", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("activated_at", UtcDateTime()),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime()),
    Column("certificate_pem", LargeBinary),
    Column("upstream_chain_pem", LargeBinary),
    Column("public_key_pem", LargeBinary, nullable=False),
)
Index("ix_authority_keys_kind_state", authority_keys.c.kind, authority_keys.c.state)

bundle_state = Table(
    "bundle_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sequence", BigInteger, nullable=False),
)

admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
)
