"""Throwaway PostgreSQL for the test suite.

The suite starts its own cluster so that tests never depend on (or damage) a server that
happens to be installed, and so that CI on a fresh machine needs nothing but the PostgreSQL
binaries. The cluster lives in a temporary directory, listens on a free loopback port, trades
durability for speed (``fsync=off``) and is removed when the session ends.

PostgreSQL refuses to run as root, so when the suite runs as root ``initdb`` and ``pg_ctl``
run as the ``postgres`` system user through ``runuser``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

__all__ = [
    "ENV_DATABASE_URL",
    "PostgresCluster",
    "PostgresServer",
    "PostgresUnavailable",
    "find_pg_bindir",
    "in_ci",
    "reap_stale_clusters",
    "server_from_environment",
    "unavailable",
    "unique_database_name",
]

ENV_DATABASE_URL = "TABARD_TEST_DATABASE_URL"
"""If set to a PostgreSQL URL, tests use that server instead of starting a cluster."""

_DIR_PREFIX = "tabard-pg-"
_MARKER = "tabard-cluster.json"
_SYSTEM_USER = "postgres"
_START_ATTEMPTS = 3
_COMMAND_TIMEOUT = 120.0
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SQLALCHEMY_DRIVER = "postgresql+psycopg"
_ACCEPTED_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started or reached; the message says why."""


def in_ci() -> bool:
    """CI sets ``CI=true``; there a missing database is a failure, never a skip."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Fail in CI, skip elsewhere: a developer without PostgreSQL can still run the rest."""
    if in_ci():
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def find_pg_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is not installed.

    ``pg_config --bindir`` is tried first; on Debian it may name a directory without the
    server binaries, so the highest ``/usr/lib/postgresql/*/bin`` is the fallback.
    """
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
            if out and _has_server_binaries(Path(out)):
                return Path(out)
    versioned: list[tuple[tuple[int, ...], Path]] = []
    for candidate in glob.glob("/usr/lib/postgresql/*/bin"):
        path = Path(candidate)
        version = path.parent.name
        if re.fullmatch(r"\d+(\.\d+)*", version) and _has_server_binaries(path):
            versioned.append((tuple(int(part) for part in version.split(".")), path))
    if versioned:
        return max(versioned)[1]
    initdb = shutil.which("initdb")
    if initdb is not None and _has_server_binaries(Path(initdb).parent):
        return Path(initdb).parent
    return None


def _has_server_binaries(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file()


def unique_database_name(hint: str = "") -> str:
    """A fresh database name, readable enough to find the test that made it."""
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40]
    suffix = uuid.uuid4().hex[:12]
    return f"t_{slug}_{suffix}" if slug else f"t_{suffix}"


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {_NAME_RE.pattern}")
    return name


class PostgresServer:
    """A PostgreSQL server on which tests create and drop their own databases.

    ``url`` is any PostgreSQL URL (``postgresql://``, ``postgres://`` or
    ``postgresql+psycopg://``); its database is the maintenance database used for
    ``CREATE``/``DROP DATABASE`` (``postgres`` when absent).
    """

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.drivername not in _ACCEPTED_SCHEMES:
            raise ValueError(f"not a PostgreSQL URL (scheme {parsed.drivername!r})")
        self._url: URL = parsed.set(
            drivername=_SQLALCHEMY_DRIVER, database=parsed.database or "postgres"
        )

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database."""
        return self._url.render_as_string(hide_password=False)

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server."""
        return self._url.set(database=_check_name(name)).render_as_string(hide_password=False)

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        conninfo = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)

    def check(self) -> None:
        """Raise :class:`PostgresUnavailable` unless the server answers a query."""
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise PostgresUnavailable(
                f"cannot connect to {self._url.render_as_string(hide_password=True)}: "
                f"{type(exc).__name__}: {_tail(str(exc), lines=1)}"
            ) from exc

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        with self._connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_check_name(name))))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, ending its connections first (a pool may hold some)."""
        with self._connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (_check_name(name),),
            )
            force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force)
            )

    def database_exists(self, name: str) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    def stop(self) -> None:
        """Nothing to stop for a server the suite did not start."""


class PostgresCluster(PostgresServer):
    """A cluster this process started with ``initdb`` in a temporary directory.

    Use :meth:`start`; :meth:`stop` shuts it down (fast mode) and removes the directory.
    ``stop`` also runs at interpreter exit, and clusters whose owning process died without
    stopping them are stopped by the next :meth:`start` (see :func:`reap_stale_clusters`).
    """

    def __init__(self, *, bindir: Path, base_dir: Path, port: int, run_as: str | None) -> None:
        super().__init__(f"{_SQLALCHEMY_DRIVER}://postgres@127.0.0.1:{port}/postgres")
        self.bindir = bindir
        self.base_dir = base_dir
        self.port = port
        self._run_as = run_as
        self._stopped = False
        self._durable = False

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @classmethod
    def start(cls, bindir: Path | None = None, *, durable: bool = False) -> PostgresCluster:
        """Initialise and start a cluster; raise :class:`PostgresUnavailable` if impossible.
        ``durable``: with PostgreSQL's default fsync and commit durability (for benchmarks;
        tests run without them)."""
        bindir = bindir or find_pg_bindir()
        if bindir is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) not found via pg_config or "
                "/usr/lib/postgresql/*/bin; install the postgresql package"
            )
        run_as = _system_user_if_root()
        reap_stale_clusters()
        base_dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=_temp_root(run_as)))
        cluster = cls(bindir=bindir, base_dir=base_dir, port=0, run_as=run_as)
        cluster._durable = durable
        (base_dir / _MARKER).write_text(
            json.dumps({"owner_pid": os.getpid(), "bindir": str(bindir), "run_as": run_as})
        )
        atexit.register(cluster.stop)
        try:
            if run_as is not None:
                shutil.chown(base_dir, user=run_as, group=_primary_group(run_as))
                base_dir.chmod(0o700)
            cluster._run(
                "initdb",
                "-D", str(cluster.data_dir),
                "-A", "trust",
                "-U", "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )  # fmt: skip
            cluster._start_on_free_port()
            cluster.check()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_on_free_port(self) -> None:
        last_error: PostgresUnavailable | None = None
        for _ in range(_START_ATTEMPTS):
            port = _free_port()
            options = " ".join(
                [
                    f"-p {port}",
                    f"-k {shlex.quote(str(self.base_dir))}",
                    "-c listen_addresses=127.0.0.1",
                ]
                + ([] if self._durable else [
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ])
            )
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                    "-o", options, "-w", "-t", "60", "start",
                )  # fmt: skip
            except PostgresUnavailable as exc:
                last_error = exc  # most likely the port was taken between probe and bind
                continue
            self.port = port
            self._url = self._url.set(port=port)
            return
        assert last_error is not None
        raise last_error

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as, "--", *command]
        try:
            done = subprocess.run(
                command,
                cwd=self.base_dir,
                capture_output=True,
                text=True,
                timeout=_COMMAND_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{tool} could not run: {exc}") from exc
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{tool} exited {done.returncode}: {_tail(done.stderr or done.stdout)}"
                f"{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return f"\nserver log:\n{_tail(text, lines=15)}" if text.strip() else ""

    def postmaster_pid(self) -> int | None:
        """PID of the running postmaster, from ``postmaster.pid``; ``None`` when not running."""
        return _postmaster_pid(self.data_dir)

    def stop(self) -> None:
        """Stop the server (``pg_ctl -m fast``) and remove its directory; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        _shutdown(self.bindir, self.data_dir, self._run_as, mode="fast")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def server_from_environment() -> PostgresServer:
    """The server tests should use: ``TABARD_TEST_DATABASE_URL`` if set, else a new cluster."""
    configured = os.environ.get(ENV_DATABASE_URL, "").strip()
    if configured:
        try:
            server = PostgresServer(configured)
        except ValueError as exc:
            raise PostgresUnavailable(f"{ENV_DATABASE_URL}: {exc}") from exc
        server.check()
        return server
    return PostgresCluster.start()


def reap_stale_clusters() -> list[Path]:
    """Stop and remove clusters left behind by test processes that no longer exist.

    Only directories carrying this module's marker, whose owner PID is dead, are touched;
    clusters of concurrently running sessions are left alone. Returns the removed paths.
    """
    removed: list[Path] = []
    roots = {tempfile.gettempdir(), "/tmp"}
    for root in roots:
        for marker in glob.glob(os.path.join(root, _DIR_PREFIX + "*", _MARKER)):
            base_dir = Path(marker).parent
            try:
                info = json.loads(Path(marker).read_text())
                owner = int(info["owner_pid"])
                bindir = Path(str(info["bindir"]))
                run_as = info.get("run_as")
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if _process_alive(owner):
                continue
            _shutdown(
                bindir,
                base_dir / "data",
                run_as if isinstance(run_as, str) else None,
                mode="immediate",
            )
            shutil.rmtree(base_dir, ignore_errors=True)
            if not base_dir.exists():
                removed.append(base_dir)
    return removed


def _shutdown(bindir: Path, data_dir: Path, run_as: str | None, *, mode: str) -> None:
    """Stop the postmaster of ``data_dir``; fall back to signalling its recorded PID."""
    pid = _postmaster_pid(data_dir)
    if pid is None:
        return
    command = [str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", mode, "-w", "-t", "30", "stop"]
    if run_as is not None:
        command = ["runuser", "-u", run_as, "--", *command]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(command, cwd=data_dir.parent, capture_output=True, timeout=60, check=False)
    if _process_alive(pid) and _postmaster_pid(data_dir) == pid:
        # pg_ctl could not stop it: SIGQUIT is PostgreSQL's immediate shutdown.
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
            if _wait_gone(pid, 10.0):
                break


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_alive(pid):
            return True
        time.sleep(0.05)
    return not _process_alive(pid)


def _system_user_if_root() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root but there is no {_SYSTEM_USER!r} system user to run PostgreSQL"
        ) from None
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root but 'runuser' is not installed")
    return _SYSTEM_USER


def _primary_group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _temp_root(run_as: str | None) -> str:
    # The postgres user must reach the directory, and socket paths are limited to ~107 bytes:
    # /tmp satisfies both, whereas TMPDIR may sit under root's home or be long.
    if run_as is not None or len(tempfile.gettempdir()) > 60:
        return "/tmp"
    return tempfile.gettempdir()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(text: str, lines: int = 5) -> str:
    kept: Sequence[str] = text.strip().splitlines()[-lines:]
    return "\n".join(kept)


@contextlib.contextmanager
def backend_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL for ``request.param`` (``sqlite`` or ``postgresql``).

    For fixtures that add their own parameters beside the two storage backends; the
    PostgreSQL server comes from the session's ``postgres_cluster`` fixture.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tabard.db'}"
        return
    server = request.getfixturevalue("postgres_cluster")
    name = unique_database_name(request.node.name)
    url: str = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)
