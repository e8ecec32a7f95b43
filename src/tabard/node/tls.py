"""TLS to the node API: the server must present the X509-SVID ``spiffe://<td>/tabard/server``.

Python's ``ssl`` validates certificate chains but knows nothing of URI SANs, and httpx offers
no hook between the handshake and the first request byte. So the check is done in two parts:

1. OpenSSL validates the chain (``CERT_REQUIRED``) with the trust domain's bundle as the only
   trust anchors (``VERIFY_X509_PARTIAL_CHAIN``, because any bundle authority is an anchor,
   self-signed or not) and ``check_hostname=False`` (the identity is the SPIFFE ID, not a
   DNS name; STANDARDS.md §2.5 steps 4-5).
2. :class:`SpiffeServerTransport` runs httpx over an httpcore pool whose network backend
   checks the peer leaf right after ``start_tls`` and before anything is sent: exactly one
   URI SAN, equal to the expected SPIFFE ID, not a CA (§2.5 steps 2-3 and 6). A mismatch
   closes the connection and raises :class:`ServerIdentityError`, so no request body (a CSR,
   process evidence) ever reaches a peer that is merely *some* SVID of the trust domain.

The client certificate (the node SVID) is loaded through an anonymous in-memory file
(``memfd_create``), so the private key is never written anywhere by this module.
"""

from __future__ import annotations

import os
import ssl
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import httpcore
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tabard.authority.keymanager.base import PrivateKey
from tabard.node.errors import ServerIdentityError
from tabard.spiffe import Bundle, SpiffeId, TrustDomain

__all__ = [
    "SERVER_PATH",
    "SpiffeServerTransport",
    "check_server_certificate",
    "node_api_context",
    "server_spiffe_id",
]

SERVER_PATH = "/tabard/server"


def server_spiffe_id(trust_domain: TrustDomain) -> SpiffeId:
    return SpiffeId.from_path(trust_domain, SERVER_PATH)


def check_server_certificate(der: bytes, expected: SpiffeId) -> None:
    """Raise :class:`ServerIdentityError` unless ``der`` is a leaf X509-SVID for ``expected``.

    The chain itself has already been validated by OpenSSL against the bundle.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise ServerIdentityError("the node API's certificate holds no SPIFFE ID") from exc
    uris = sans.value.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise ServerIdentityError("the node API's certificate must hold exactly one URI SAN")
    if uris[0] != str(expected):
        raise ServerIdentityError(
            f"the node API presented {uris[0][:200]!r}, not {expected}"
        )
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    if constraints.ca:
        raise ServerIdentityError("the node API presented a CA certificate")


def _identity_pem(chain: Sequence[x509.Certificate], key: PrivateKey) -> bytes:
    certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return certs + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def node_api_context(
    bundle: Bundle,
    *,
    chain: Sequence[x509.Certificate] | None = None,
    key: PrivateKey | None = None,
) -> ssl.SSLContext:
    """A client context trusting only ``bundle``'s X.509 authorities, with the node SVID."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    pem = bundle.x509_pem()
    if not pem:
        raise ServerIdentityError(f"the bundle of {bundle.trust_domain} has no X.509 authority")
    ctx.load_verify_locations(cadata=pem)
    if chain is not None and key is not None:
        fd = os.memfd_create("tabard-node-svid", os.MFD_CLOEXEC)
        try:
            os.write(fd, _identity_pem(chain, key))
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    return ctx


class _CheckedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, check: Callable[[bytes], None]) -> None:
        self._inner = inner
        self._check = check

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        ssl_object = stream.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            if not der:
                raise ServerIdentityError("the node API presented no certificate")
            self._check(der)
        except BaseException:
            await stream.aclose()
            raise
        return stream

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _CheckingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, check: Callable[[bytes], None]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._check = check

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CheckedStream(stream, self._check)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _CheckedStream(stream, self._check)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, inner: typing.AsyncIterable[bytes]) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._inner:
                yield part
        except httpcore.TimeoutException as exc:
            raise httpx.ReadTimeout(str(exc)) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise httpx.ReadError(str(exc)) from exc

    async def aclose(self) -> None:
        closer = getattr(self._inner, "aclose", None)
        if closer is not None:
            await closer()


class SpiffeServerTransport(httpx.AsyncBaseTransport):
    """An httpx transport that only talks to the X509-SVID ``expected`` (module docstring)."""

    def __init__(self, ssl_context: ssl.SSLContext, expected: SpiffeId) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            network_backend=_CheckingBackend(lambda der: check_server_certificate(der, expected)),
            max_connections=32,
            keepalive_expiry=30.0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise TypeError("SpiffeServerTransport needs an async request body")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core_request)
        except httpcore.TimeoutException as exc:
            raise httpx.TimeoutException(str(exc), request=request) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except ssl.SSLError as exc:
            raise httpx.ConnectError(f"TLS: {exc.reason or exc}", request=request) from exc
        if not isinstance(response.stream, typing.AsyncIterable):
            raise TypeError("httpcore returned a synchronous response stream")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
