"""Tests of the suite's own infrastructure: database fixtures and the Node.js interop harness."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from base64 import b64encode
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm

from tests.support.node import NodeScriptError, run_node_script
from tests.support.postgres import (
    PostgresCluster,
    PostgresServer,
    find_pg_bindir,
    reap_stale_clusters,
    unavailable,
    unique_database_name,
)

# --- database_url -------------------------------------------------------------------------


def test_database_url_round_trips_rows(database_url: str, request: pytest.FixtureRequest) -> None:
    backend = sa.make_url(database_url).get_backend_name()
    assert (request.node.get_closest_marker("postgres") is not None) == (backend == "postgresql")
    metadata = sa.MetaData()
    agents = sa.Table(
        "agents",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
    )
    engine = sa.create_engine(database_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(agents.insert(), [{"name": "planner"}, {"name": "résumé-reader"}])
        with engine.connect() as conn:
            names = conn.execute(sa.select(agents.c.name).order_by(agents.c.id)).scalars().all()
    finally:
        engine.dispose()
    assert names == ["planner", "résumé-reader"]


def test_sqlite_url_is_a_fresh_file_in_tmp_path(database_url: str, tmp_path: Path) -> None:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database == str(tmp_path / "tabard.db")
        assert not (tmp_path / "tabard.db").exists()
    else:
        assert url.drivername == "postgresql+psycopg"


_seen_databases: list[str] = []


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_postgres_database(
    database_url: str, run: int, postgres_cluster: PostgresServer
) -> None:
    name = sa.make_url(database_url).database
    assert name is not None
    assert name not in _seen_databases
    assert postgres_cluster.database_exists(name)
    for earlier in _seen_databases:  # dropped when that test finished
        assert not postgres_cluster.database_exists(earlier)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == name
            conn.execute(sa.text("CREATE TABLE only_mine (run integer)"))  # fails if shared
            conn.execute(sa.text("INSERT INTO only_mine VALUES (:run)"), {"run": run})
    finally:
        engine.dispose()
    _seen_databases.append(name)


@pytest.mark.postgres
def test_drop_database_ends_open_connections(postgres_cluster: PostgresServer) -> None:
    name = unique_database_name("drop")
    url = postgres_cluster.create_database(name)
    engine = sa.create_engine(url)
    conn = engine.connect()
    conn.execute(sa.text("SELECT 1"))
    try:
        postgres_cluster.drop_database(name)
        assert not postgres_cluster.database_exists(name)
    finally:
        conn.invalidate()
        engine.dispose()


def test_unique_database_names_are_valid_identifiers() -> None:
    names = {unique_database_name("test_x[postgresql]") for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.startswith("t_test_x_postgresql_")
        assert len(name) <= 63
    with pytest.raises(ValueError):
        PostgresServer("postgresql://postgres@127.0.0.1:1/postgres").database_url('x"; DROP')
    with pytest.raises(ValueError):
        PostgresServer("sqlite:///tabard.db")


# --- PostgresCluster lifecycle ------------------------------------------------------------


@pytest.fixture
def pg_bindir() -> Path:
    bindir = find_pg_bindir()
    if bindir is None:
        unavailable("server binaries (initdb, pg_ctl) not found")
    return bindir


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


@pytest.mark.postgres
def test_cluster_stop_ends_postmaster_and_removes_directory(pg_bindir: Path) -> None:
    assert (pg_bindir / "initdb").is_file()
    cluster = PostgresCluster.start(pg_bindir)
    with cluster:
        pid = cluster.postmaster_pid()
        assert pid is not None and _alive(pid)
        url = cluster.create_database("lifecycle")
        with psycopg.connect(
            sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        ) as conn:
            row = conn.execute("SHOW fsync").fetchone()
            assert row == ("off",)
    assert not cluster.base_dir.exists()
    assert not _alive(pid)
    cluster.stop()  # idempotent


@pytest.mark.postgres
def test_reap_stops_clusters_whose_owner_died(pg_bindir: Path) -> None:
    cluster = PostgresCluster.start(pg_bindir)
    try:
        pid = cluster.postmaster_pid()
        assert pid is not None
        dead = subprocess.Popen(["true"])
        dead.wait()
        marker = cluster.base_dir / "tabard-cluster.json"
        info = json.loads(marker.read_text())
        marker.write_text(json.dumps({**info, "owner_pid": dead.pid}))
        assert cluster.base_dir in reap_stale_clusters()
        assert not cluster.base_dir.exists()
        assert not _alive(pid)
    finally:
        cluster.stop()


# --- npm jose interop ---------------------------------------------------------------------

AUDIENCE = "spiffe://example.org/tool-server"


def _self_signed(key: ec.EllipticCurvePrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "example.org")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return b64encode(cert.public_bytes(Encoding.DER)).decode()


class _Bundle:
    """A SPIFFE bundle with one JWT authority and one X.509 authority."""

    def __init__(self) -> None:
        self.jwt_key = ec.generate_private_key(ec.SECP256R1())
        self.x509_key = ec.generate_private_key(ec.SECP256R1())
        jwt_authority: dict[str, Any] = ECAlgorithm.to_jwk(self.jwt_key.public_key(), as_dict=True)
        x509_authority: dict[str, Any] = ECAlgorithm.to_jwk(
            self.x509_key.public_key(), as_dict=True
        )
        self.document = {
            "keys": [
                {**x509_authority, "use": "x509-svid", "x5c": [_self_signed(self.x509_key)]},
                {**jwt_authority, "use": "jwt-svid", "kid": "jwt-authority-1"},
            ],
            "spiffe_sequence": 1,
            "spiffe_refresh_hint": 300,
        }

    def token(self, key: ec.EllipticCurvePrivateKey, kid: str | None = "jwt-authority-1") -> str:
        now = int(time.time())
        claims = {
            "sub": "spiffe://example.org/agent/planner",
            "aud": [AUDIENCE],
            "iat": now,
            "exp": now + 300,
        }
        headers = {"typ": "JWT"} if kid is None else {"kid": kid, "typ": "JWT"}
        return jwt.encode(claims, key, algorithm="ES256", headers=headers)


@pytest.fixture
def bundle_file(tmp_path: Path) -> tuple[_Bundle, Path]:
    bundle = _Bundle()
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle.document))
    return bundle, path


@pytest.mark.interop
def test_jose_accepts_jwt_svid_from_spiffe_bundle(bundle_file: tuple[_Bundle, Path]) -> None:
    bundle, path = bundle_file
    token = bundle.token(bundle.jwt_key)
    result = run_node_script(
        "verify_jwt.mjs", "--jwks", str(path), "--token", token, "--audience", AUDIENCE
    )
    assert result["ok"] is True, result
    assert result["payload"]["sub"] == "spiffe://example.org/agent/planner"
    assert result["header"] == {"alg": "ES256", "kid": "jwt-authority-1", "typ": "JWT"}


@pytest.mark.interop
def test_jose_rejects_wrong_audience(bundle_file: tuple[_Bundle, Path]) -> None:
    bundle, path = bundle_file
    token = bundle.token(bundle.jwt_key)
    result = run_node_script(
        "verify_jwt.mjs", "--jwks", str(path), "--token", token, "--audience", "spiffe://x/y"
    )
    assert result["ok"] is False
    assert result["error"] == "ERR_JWT_CLAIM_VALIDATION_FAILED"
    assert result["claim"] == "aud"


@pytest.mark.interop
def test_jose_ignores_x509_authorities(bundle_file: tuple[_Bundle, Path]) -> None:
    bundle, path = bundle_file
    # Without a kid every EC P-256 key is a candidate: only the jwt-svid one may remain.
    token = bundle.token(bundle.x509_key, kid=None)
    result = run_node_script(
        "verify_jwt.mjs", "--jwks", str(path), "--token", token, "--audience", AUDIENCE
    )
    assert result["ok"] is False
    assert result["error"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"


@pytest.fixture
def bundle_url(bundle_file: tuple[_Bundle, Path]) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(bundle_file[1].parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{bundle_file[1].name}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.interop
def test_jose_loads_bundle_over_http(bundle_file: tuple[_Bundle, Path], bundle_url: str) -> None:
    bundle, _ = bundle_file
    token = bundle.token(bundle.jwt_key)
    result = run_node_script(
        "verify_jwt.mjs", "--jwks", bundle_url, "--token", token, "--audience", AUDIENCE
    )
    assert result["ok"] is True, result


@pytest.mark.interop
def test_verify_script_reports_usage_errors_as_json() -> None:
    result = run_node_script("verify_jwt.mjs", "--token", "x.y.z")
    assert result == {"ok": False, "error": "ERR_USAGE", "message": "--jwks is required"}
    with pytest.raises(FileNotFoundError):
        run_node_script("no_such_script.mjs")


@pytest.mark.interop
def test_run_node_script_rejects_output_without_verdict(tmp_path: Path) -> None:
    script = tmp_path / "bad.mjs"
    script.write_text("console.log('not json'); process.exit(3);\n")
    with pytest.raises(NodeScriptError, match="exited 3 without a JSON verdict"):
        run_node_script(str(script))
    script.write_text("console.log(JSON.stringify({ok: true})); process.exit(1);\n")
    with pytest.raises(NodeScriptError, match="printed ok=True but exited 1"):
        run_node_script(str(script))
