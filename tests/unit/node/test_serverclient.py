"""HttpNodeServerClient against real HTTP(S) servers: discovery, mTLS, the server's SPIFFE ID."""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.authority import CertificateAuthority, X509SvidParams, self_signed_root
from tabard.clock import SystemClock
from tabard.node import (
    HttpNodeServerClient,
    NodeConfigError,
    ServerIdentityError,
    ServerRefusedError,
    ServerUnavailableError,
    discover,
)
from tabard.node.agent import csr_pem, new_key
from tabard.node.tls import check_server_certificate
from tabard.spiffe import Bundle, SpiffeId, TrustDomain

TD = TrustDomain("example.org")
NODE_ID = SpiffeId.parse("spiffe://example.org/node/n1")


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


class Pki:
    def __init__(self) -> None:
        clock = SystemClock()
        key = ec.generate_private_key(ec.SECP256R1())
        self.root = self_signed_root(TD, key, timedelta(days=1), clock)
        self.ca = CertificateAuthority(self.root, key, clock=clock)
        self.bundle = Bundle(TD, (self.root,), (), 3)

    def svid(self, spiffe_id: str, public_key: Any, **kw: Any) -> tuple[x509.Certificate, ...]:
        return self.ca.mint_x509_svid(
            X509SvidParams(SpiffeId.parse(spiffe_id), public_key, timedelta(hours=1), **kw)
        )


class Api:
    """A node API stand-in: records each request and the client's URI SAN."""

    def __init__(self, pki: Pki, *, tls_id: str | None) -> None:
        self.pki = pki
        self.requests: list[tuple[str, str | None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _client_id(self) -> str | None:
                get = getattr(self.connection, "getpeercert", None)
                der = get(binary_form=True) if get else None
                if not der:
                    return None
                cert = x509.load_der_x509_certificate(der)
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                return san.get_values_for_type(x509.UniformResourceIdentifier)[0]

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                ctype = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                api.requests.append((self.path, self._client_id()))
                if self.path == "/.well-known/tabard":
                    self._send(200, {"trust_domain": "example.org",
                                     "node_api_url": api.node_api_url, "bundle_url": "/bundle"})
                elif self.path == "/bundle":
                    self._send(200, pki.bundle.to_jwks())
                else:
                    self._send(404, {"code": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                api.requests.append((self.path, self._client_id()))
                if self.path == "/node/v1/attest":
                    csr = x509.load_pem_x509_csr(body["csr"].encode())
                    chain = pki.svid(str(NODE_ID), csr.public_key())
                    self._send(200, {
                        "node_id": "n1", "spiffe_id": str(NODE_ID),
                        "svid_pem": "".join(
                            c.public_bytes(serialization.Encoding.PEM).decode() for c in chain
                        ),
                        "expires_at": chain[0].not_valid_after_utc.isoformat(),
                        "bundle": pki.bundle.to_jwks(),
                    })
                elif self.path == "/node/v1/sync":
                    self._send(200, {"revision": 4, "bundle": pki.bundle.to_jwks(),
                                     "federated_bundles": {}, "entries": [{
                                         "id": "e1", "spiffe_id": "spiffe://example.org/a",
                                         "parent_id": str(NODE_ID), "selectors": ["unix:uid:0"],
                                         "x509_svid_ttl": 600, "jwt_svid_ttl": 60,
                                         "dns_names": [], "federates_with": [], "hint": "",
                                         "revision": 4, "created_at": "2026-01-01T00:00:00Z",
                                         "updated_at": "2026-01-01T00:00:00Z"}]})
                elif self.path == "/node/v1/svids/jwt":
                    self._send(403, {"type": "about:blank", "title": "Forbidden",
                                     "status": 403, "code": "not_your_entry"})
                else:
                    self._send(503, {"code": "unavailable"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.server.server_address[1]
        if tls_id is not None:
            key = ec.generate_private_key(ec.SECP256R1())
            chain = pki.svid(tls_id, key.public_key(), dns_names=("localhost",))
            directory = Path(tempfile.mkdtemp())
            (directory / "c.pem").write_bytes(
                b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
                + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            )
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(directory / "c.pem")
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(cadata=pki.bundle.x509_pem())
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://127.0.0.1:{port}"
        else:
            self.url = f"http://127.0.0.1:{port}"
        self.node_api_url = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pki() -> Pki:
    return Pki()


@pytest.fixture
def apis(pki: Pki) -> Iterator[Callable[..., Api]]:
    made: list[Api] = []

    def make(**kw: Any) -> Api:
        api = Api(pki, **kw)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


def test_discover_attest_then_mtls_sync(pki: Pki, apis: Callable[..., Api]) -> None:
    rest = apis(tls_id=None)
    node_api = apis(tls_id="spiffe://example.org/tabard/server")
    rest.node_api_url = node_api.url

    async def body() -> None:
        found = await discover(rest.url)
        assert found.trust_domain == TD and found.node_api_url == node_api.url
        assert found.bundle.x509_authorities == (pki.root,)
        client = HttpNodeServerClient(found)
        key = new_key()
        creds = await client.attest("token", csr_pem(key))
        assert creds.spiffe_id == NODE_ID and creds.chain[0].public_key() == key.public_key()
        client.use_credentials(creds.chain, key, creds.bundle)
        snapshot = await client.sync()
        assert snapshot.revision == 4
        assert [e.spiffe_id for e in snapshot.entries] == ["spiffe://example.org/a"]
        assert snapshot.entries[0].selectors == frozenset({"unix:uid:0"})
        with pytest.raises(ServerRefusedError) as info:
            from tabard.node import JwtSvidRequest

            await client.mint_jwt_svid(JwtSvidRequest("e1", None, ("a",)))
        assert info.value.code == "not_your_entry"
        await client.aclose()

    run(body)
    # the join token call carried no client certificate, every later one the node SVID
    assert node_api.requests[0] == ("/node/v1/attest", None)
    assert node_api.requests[1] == ("/node/v1/sync", str(NODE_ID))


def test_a_node_api_with_another_spiffe_id_gets_no_request(
    pki: Pki, apis: Callable[..., Api]
) -> None:
    impostor = apis(tls_id="spiffe://example.org/agent/impostor")  # valid chain, wrong ID

    async def body() -> None:
        from tabard.node import Discovery

        client = HttpNodeServerClient(Discovery(TD, impostor.url, pki.bundle))
        with pytest.raises(ServerIdentityError):
            await client.attest("token", csr_pem(new_key()))
        await client.aclose()

    run(body)
    assert impostor.requests == []


def test_a_node_api_outside_the_bundle_is_refused(apis: Callable[..., Api]) -> None:
    other = apis(tls_id="spiffe://example.org/tabard/server")  # signed by another CA

    async def body() -> None:
        from tabard.node import Discovery

        client = HttpNodeServerClient(Discovery(TD, other.url, Pki().bundle))
        with pytest.raises(ServerUnavailableError, match="certificate"):
            await client.sync()
        await client.aclose()

    run(body)
    assert other.requests == []


def test_unreachable_server_and_pinned_bundle(pki: Pki, apis: Callable[..., Api]) -> None:
    rest = apis(tls_id=None)
    rest.node_api_url = "https://127.0.0.1:9"

    async def body() -> None:
        with pytest.raises(ServerUnavailableError):
            await discover("http://127.0.0.1:1")
        with pytest.raises(NodeConfigError):
            await discover(rest.url, pinned_bundle=Bundle(TrustDomain("other.org")))
        pinned = await discover(rest.url, pinned_bundle=pki.bundle)
        assert pinned.bundle is pki.bundle
        with pytest.raises(NodeConfigError):
            await discover("ftp://x")

    run(body)


def test_server_certificate_check() -> None:
    pki = Pki()
    key = ec.generate_private_key(ec.SECP256R1())
    good = pki.svid("spiffe://example.org/tabard/server", key.public_key())[0]
    expected = SpiffeId.parse("spiffe://example.org/tabard/server")
    check_server_certificate(good.public_bytes(serialization.Encoding.DER), expected)
    other = pki.svid("spiffe://example.org/tabard/serverx", key.public_key())[0]
    with pytest.raises(ServerIdentityError):
        check_server_certificate(other.public_bytes(serialization.Encoding.DER), expected)
    with pytest.raises(ServerIdentityError):
        check_server_certificate(pki.root.public_bytes(serialization.Encoding.DER), expected)
