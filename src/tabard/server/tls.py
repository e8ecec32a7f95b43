"""TLS for the node API listener: the server's own X509-SVID, the trust store, peer chains.

uvicorn neither exposes the client certificate to the application nor reloads certificates,
so this module does both: :class:`NodeApiTls` owns one ``ssl.SSLContext`` whose server
certificate (``spiffe://<td>/tabard/server``) is re-minted at half-life and whose trust store
follows the bundle (new CAs are added as they are published; retired ones are refused by the
application, which validates every client leaf against the current bundle), and
:class:`PeerCertH11Protocol` puts the client's chain into the ASGI scope as
``scope["extensions"]["tls"]["client_cert_chain"]`` (DER, leaf first). Python 3.11's ``ssl``
only returns the peer's leaf, so the chain is completed from tabard's own CA certificates:
the only intermediates a valid node SVID can have.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from uvicorn.protocols.http.h11_impl import H11Protocol

from tabard.authority import Authority
from tabard.clock import Clock
from tabard.spiffe import SpiffeId, TrustDomain

__all__ = ["SERVER_PATH", "NodeApiTls", "PeerCertH11Protocol", "server_spiffe_id"]

SERVER_PATH = "/tabard/server"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


def server_spiffe_id(trust_domain: TrustDomain) -> SpiffeId:
    return SpiffeId(trust_domain, SERVER_PATH)


class NodeApiTls:
    def __init__(self, authority: Authority, clock: Clock, directory: Path) -> None:
        self._authority = authority
        self._clock = clock
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._trusted: set[bytes] = set()
        self._renew_at: datetime | None = None
        self._intermediates: dict[bytes, list[bytes]] = {}
        self._bundle_sequence = -1
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.verify_mode = ssl.CERT_OPTIONAL
        self.refresh()

    def refresh(self) -> None:
        """Re-mint the server SVID past half-life and follow the bundle; cheap when idle."""
        with self._lock:
            now = self._clock.now()
            bundle = self._authority.bundle()
            if bundle.sequence != self._bundle_sequence:
                self._follow_bundle()
                self._bundle_sequence = bundle.sequence
            if self._renew_at is None or now >= self._renew_at:
                self._mint(now)

    def _follow_bundle(self) -> None:
        new = [c for c in self._authority.bundle().x509_authorities
               if c.public_bytes(serialization.Encoding.DER) not in self._trusted]
        if new:
            self.context.load_verify_locations(
                cadata="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in new))
            self._trusted.update(c.public_bytes(serialization.Encoding.DER) for c in new)
        intermediates: dict[bytes, list[bytes]] = {}
        for record in self._authority.authorities():
            if record.kind != "x509" or record.state == "retired" or not record.certificate_pem:
                continue
            ca = x509.load_pem_x509_certificate(record.certificate_pem)
            upstream = (x509.load_pem_x509_certificates(record.upstream_chain_pem)
                        if record.upstream_chain_pem else [])
            if upstream:  # an intermediate under an upstream root: send it and its parents
                chain = [ca, *upstream[:-1]]
                intermediates[ca.subject.public_bytes()] = [
                    c.public_bytes(serialization.Encoding.DER) for c in chain]
        self._intermediates = intermediates

    def _mint(self, now: datetime) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        minted = self._authority.mint_x509_svid(
            server_spiffe_id(self._authority.trust_domain), public_key=key.public_key(),
            dns_names=("localhost",),
        )
        cert_path, key_path = self._dir / "server-svid.pem", self._dir / "server-svid.key"
        _write_private(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        _write_private(cert_path, b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in minted.chain))
        self.context.load_cert_chain(cert_path, key_path)
        self._renew_at = now + (minted.expires_at - now) / 2

    def complete_chain(self, leaf_der: bytes) -> list[bytes]:
        leaf = x509.load_der_x509_certificate(leaf_der)
        return [leaf_der, *self._intermediates.get(leaf.issuer.public_bytes(), [])]

    async def refresh_loop(self, interval: float = 10.0) -> None:
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.refresh)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class PeerCertH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol plus the client certificate chain in the ASGI scope."""

    tls: NodeApiTls | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        leaf = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        chain = self.tls.complete_chain(leaf) if (leaf and self.tls) else []
        inner: ASGIApp = self.app

        async def app(scope: Scope, receive: Callable[[], Awaitable[Any]],
                      send: Callable[[Any], Awaitable[None]]) -> None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": list(chain)}
            await inner(scope, receive, send)

        self.app = app

    @classmethod
    def bound_to(cls, tls: NodeApiTls) -> type[PeerCertH11Protocol]:
        return type("BoundPeerCertH11Protocol", (cls,), {"tls": tls})
