"""Storage: SQLAlchemy engine, tables, Alembic migrations and the SQL adapters of the
domain ports (SQLite by default, PostgreSQL via ``TABARD_DATABASE_URL``). ORM and Core
objects never leave this package: adapters return the domain's own dataclasses."""

from tabard.store.admin_tokens import SqlAdminTokenStore
from tabard.store.authority import SqlAuthorityStore
from tabard.store.db import Database, normalize_url

__all__ = ["Database", "SqlAdminTokenStore", "SqlAuthorityStore", "normalize_url"]
