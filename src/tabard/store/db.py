"""Engine, connections and migrations for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout so the server's threads and the CLI can share one
file; PostgreSQL is used as it comes. The schema is owned by Alembic: :meth:`Database.migrate`
upgrades to the newest revision and is safe to call at every start.

Writes run in a transaction (:meth:`Database.begin`). A read of one statement runs on an
autocommit connection (:meth:`Database.read`): without it the driver opens a transaction
before the ``SELECT`` and the pool rolls it back after, three round trips for one answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from tabard.errors import Invalid, Unavailable

__all__ = ["Database", "normalize_url"]

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise Invalid("database URL must be sqlite:///PATH or postgresql://...")
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _autocommit(engine: Engine) -> Engine:
    """PostgreSQL: the engine's pool in autocommit mode, set on checkout and undone on return
    by psycopg attributes only (no statement is sent for it). SQLite: the engine as it is —
    its driver begins a transaction only before a write, and switching the mode would cost a
    ``PRAGMA`` per checkout."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
            if path == ":memory:" or not path:
                raise Invalid("an in-memory SQLite database cannot be shared; give a file path")
        else:
            # no pre-ping: a round trip per checkout halves write throughput; a connection lost
            # to a restart fails one request, then SQLAlchemy invalidates the whole pool.
            kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._reader = _autocommit(self.engine)

    @classmethod
    def unpooled(cls, url: str) -> Database:
        db = cls.__new__(cls)
        db.url = normalize_url(url)
        db.dialect = "sqlite" if db.url.startswith("sqlite") else "postgresql"
        db.engine = create_engine(db.url, poolclass=NullPool)
        if db.dialect == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
        db._reader = _autocommit(db.engine)
        return db

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    def migrate(self) -> None:
        try:
            with self.engine.begin() as connection:
                config = self.alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig.__class__.__name__}") from exc

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction: committed on success, rolled back on error."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig.__class__.__name__}") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in autocommit mode, for reads of a single statement: one round trip
        each (no ``BEGIN``/``ROLLBACK`` around it). Statements on it do not share a snapshot,
        so reads that must agree with each other use :meth:`connect` or :meth:`begin`."""
        try:
            with self._reader.connect() as connection:
                yield connection
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig.__class__.__name__}") from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig.__class__.__name__}") from exc

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
