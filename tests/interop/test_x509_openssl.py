"""X509-SVIDs minted through the CLI, checked by tools nobody here wrote: openssl and ssl."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.platform import DevPlatform

pytestmark = pytest.mark.interop
PEER = Path(__file__).parents[1] / "support" / "tls_peer.py"


def mint(platform: DevPlatform, spiffe_id: str, out: Path, *extra: str) -> Path:
    result = platform.cli("x509", "mint", "--spiffe-id", spiffe_id, "--out-dir", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return out


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def test_openssl_verifies_and_reads_a_minted_svid(platform: DevPlatform, tmp_path: Path) -> None:
    out = mint(platform, "spiffe://example.org/ns/prod/web", tmp_path / "svid", "--ttl", "30m",
               "--dns", "web.internal")
    verified = openssl("verify", "-CAfile", str(out / "bundle.pem"), str(out / "svid.pem"))
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified

    text = openssl("x509", "-in", str(out / "svid.pem"), "-noout", "-text").stdout
    assert len(re.findall(r"URI:", text)) == 1
    assert "URI:spiffe://example.org/ns/prod/web" in text
    assert "DNS:web.internal" in text
    assert "CA:FALSE" in text
    assert "Digital Signature" in text and "Certificate Sign" not in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert (out / "svid.key").stat().st_mode & 0o777 == 0o600
    # the key on disk belongs to the certificate
    pub_cert = openssl("x509", "-in", str(out / "svid.pem"), "-noout", "-pubkey").stdout
    pub_key = openssl("pkey", "-in", str(out / "svid.key"), "-pubout").stdout
    assert pub_cert == pub_key

    # the bundle endpoint's CA and the CLI's PEM output agree
    pem = platform.cli("bundle", "show", "--format", "pem")
    assert pem.returncode == 0 and pem.stdout == (out / "bundle.pem").read_text()
    ca_text = openssl("x509", "-in", str(out / "bundle.pem"), "-noout", "-text").stdout
    assert "CA:TRUE" in ca_text and "URI:spiffe://example.org" in ca_text


def _handshake(server_dir: Path, client_dir: Path, server_ca: Path, client_ca: Path
               ) -> tuple[dict[str, object], Exception | None]:
    peer = subprocess.Popen(
        [sys.executable, str(PEER), str(server_dir / "svid.pem"), str(server_dir / "svid.key"),
         str(server_ca)], stdout=subprocess.PIPE, text=True)
    assert peer.stdout is not None
    port = json.loads(peer.stdout.readline())["port"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # SPIFFE authenticates the URI SAN, checked below
    context.load_verify_locations(str(client_ca))
    context.load_cert_chain(str(client_dir / "svid.pem"), str(client_dir / "svid.key"))
    error: Exception | None = None
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw) as conn:
            uris = [v for k, v in (conn.getpeercert() or {}).get("subjectAltName", ())
                    if k == "URI"]
            assert uris == ["spiffe://example.org/server"]
            conn.recv(5)
    except (ssl.SSLError, OSError) as exc:
        error = exc
    result = json.loads(peer.stdout.readline())
    peer.wait(timeout=10)
    return result, error


def test_mtls_between_two_processes(platform: DevPlatform, tmp_path: Path) -> None:
    server_dir = mint(platform, "spiffe://example.org/server", tmp_path / "server")
    client_dir = mint(platform, "spiffe://example.org/client", tmp_path / "client")
    result, error = _handshake(server_dir, client_dir, server_dir / "bundle.pem",
                               client_dir / "bundle.pem")
    assert error is None
    assert result == {"ok": True, "peer_uris": ["spiffe://example.org/client"]}


def test_mtls_fails_with_a_certificate_from_another_trust_domain(
        platform: DevPlatform, tmp_path: Path) -> None:
    server_dir = mint(platform, "spiffe://example.org/server", tmp_path / "server")
    with DevPlatform(tmp_path / "other", trust_domain="other.example") as other:
        client_dir = mint(other, "spiffe://other.example/client", tmp_path / "client")
        # each side trusts only its own trust domain's bundle
        result, error = _handshake(server_dir, client_dir, server_dir / "bundle.pem",
                                   server_dir / "bundle.pem")
    assert result["ok"] is False
    assert error is not None
    verified = openssl("verify", "-CAfile", str(server_dir / "bundle.pem"),
                       str(client_dir / "svid.pem"))
    assert verified.returncode != 0
