"""The audit log through the REST API and the CLI: admin actions are recorded (intent, then
outcome) and refused when the log cannot be written, SVID issuance is recorded, the CLI
verifies the database directly, and a log survives ``kill -9`` during heavy appends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text
from starlette.testclient import TestClient

from tabard.app import ControlPlane, build_control_plane
from tabard.clock import FakeClock
from tabard.config import Settings
from tabard.server import create_app
from tests.support.platform import run_cli

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TD = "example.org"


@pytest.fixture
def plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlPlane]:
    monkeypatch.delenv("TABARD_KEK", raising=False)
    settings = Settings(trust_domain=TD, data_dir=tmp_path / "data")
    p = build_control_plane(settings, clock=FakeClock(T0))
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def admin(plane: ControlPlane) -> TestClient:
    return TestClient(create_app(plane.server_services()), headers={
        "Authorization": f"Bearer {plane.admin_tokens.create('ops').token}"})


def csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def block(plane: ControlPlane, on: bool) -> None:
    with plane.db.begin() as c:
        c.execute(text("CREATE TRIGGER audit_block BEFORE INSERT ON audit_records "
                       "BEGIN SELECT RAISE(ABORT, 'read-only'); END") if on
                  else text("DROP TRIGGER audit_block"))


def test_admin_actions_are_recorded_and_refused_when_the_log_is_unwritable(
        plane: ControlPlane, admin: TestClient) -> None:
    assert admin.post("/api/v1/admin-tokens", json={"name": "ci"}).status_code == 201
    records = admin.get("/api/v1/audit/records").json()
    kinds = [(r["record"]["kind"], r["record"]["outcome"], r["record"]["what"]["operation"],
              r["record"]["actor"]) for r in records]
    assert kinds == [("admin_action", "pending", "POST /api/v1/admin-tokens", "ops"),
                     ("admin_action", "success", "POST /api/v1/admin-tokens", "ops")]
    assert records[1]["record"]["details"]["status"] == 201
    assert records[1]["record"]["details"]["intent"] == 1

    before = len(admin.get("/api/v1/admin-tokens").json())
    block(plane, True)
    refused = admin.post("/api/v1/admin-tokens", json={"name": "refused"})
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "audit_unavailable"
    assert "audit log cannot be written" in refused.json()["detail"]
    assert len(admin.get("/api/v1/admin-tokens").json()) == before  # it never took effect
    block(plane, False)
    assert admin.post("/api/v1/admin-tokens", json={"name": "again"}).status_code == 201
    assert admin.get("/api/v1/audit/verify").json()["ok"] is True


def test_svid_issuance_is_recorded_and_traced(plane: ControlPlane, admin: TestClient) -> None:
    sid = f"spiffe://{TD}/agent/refund/instance/01HX"
    minted = admin.post("/api/v1/svids/x509", json={"spiffe_id": sid, "csr": csr_pem()})
    assert minted.status_code == 200, minted.text
    jwt_svid = admin.post("/api/v1/svids/jwt", json={"spiffe_id": sid, "audience": ["svc"]})
    assert jwt_svid.status_code == 200
    trace = admin.get("/api/v1/audit/trace", params={"agent": "refund"}).json()
    issuance = [r["record"] for r in trace if r["record"]["kind"] == "issuance"]
    assert [i["what"]["operation"] for i in issuance] == ["svid.x509", "svid.jwt"]
    assert issuance[0]["who"] == {"agent": "refund", "instance": "01HX", "spiffe_id": sid}
    assert issuance[0]["details"]["serial"] == minted.json()["serial"]
    assert admin.get("/api/v1/audit/trace", params={"instance": "01HX"}).json() == trace

    block(plane, True)
    refused = admin.post("/api/v1/svids/jwt", json={"spiffe_id": sid, "audience": ["svc"]})
    assert refused.status_code == 503 and "token" not in refused.json()
    block(plane, False)


def test_cli_verifies_the_database_and_checkpoints_offline(
        plane: ControlPlane, admin: TestClient, tmp_path: Path) -> None:
    for i in range(5):
        admin.post("/api/v1/admin-tokens", json={"name": f"t{i}"})
    cp = admin.post("/api/v1/audit/checkpoints").json()
    assert cp["tree_size"] == 11  # 5 × (intent, outcome) + the intent of this request
    (tmp_path / "cp.json").write_text(admin.get("/api/v1/audit/checkpoints/latest").text)
    (tmp_path / "bundle.pem").write_text(plane.authority.bundle().x509_pem())
    url = plane.settings.effective_database_url
    env = {"TABARD_TRUST_DOMAIN": TD}

    ok = run_cli("audit", "verify", "--database-url", url, "--bundle",
                 str(tmp_path / "bundle.pem"), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "ok: 12 records" in ok.stdout and "1 checkpoints" in ok.stdout

    good = run_cli("audit", "verify-checkpoint", str(tmp_path / "cp.json"), "--bundle",
                   str(tmp_path / "bundle.pem"))
    assert good.returncode == 0 and "checkpoint of 11 records" in good.stdout

    with plane.db.begin() as c:
        c.execute(text("DELETE FROM audit_records WHERE seq = 4"))
    bad = run_cli("audit", "verify", "--database-url", url, env=env)
    assert bad.returncode == 1
    assert "TAMPERED: record 4: record 4 is missing (deleted)" in bad.stderr


APPENDER = """
import sys, threading
from tabard.audit import AuditEvent, AuditLog, What, Who
from tabard.clock import SystemClock
from tabard.store import Database, SqlAuditStore
db = Database(sys.argv[1]); db.migrate()
log = AuditLog(SqlAuditStore(db), SystemClock(), trust_domain="example.org")
ev = AuditEvent(kind="gateway_decision", actor="a", who=Who(agent="a", user="u"),
                what=What(operation="tools/call", target="t"), details={"pad": "x" * 200})
def work():
    while True:
        log.append_many([ev] * 50)
for _ in range(8):
    threading.Thread(target=work, daemon=True).start()
print("started", flush=True)
threading.Event().wait()
"""


def test_kill_9_during_heavy_appends_leaves_a_log_that_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    proc = subprocess.Popen([sys.executable, "-c", APPENDER, url], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"started"
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    result = run_cli("audit", "verify", "--database-url", url, "--json",
                     env={"TABARD_TRUST_DOMAIN": TD})
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"ok": true' in result.stdout
    records = int(result.stdout.split('"records": ')[1].split(",")[0])
    assert records > 0 and records % 50 == 0  # whole batches only: no half-written record
