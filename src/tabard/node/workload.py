"""The SPIFFE Workload API (STANDARDS.md §5) over gRPC on a Unix socket.

Spec: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Workload_API.md and
SPIFFE_Workload_Endpoint.md. All five X.509/JWT RPCs are served; the WIT-SVID RPCs answer
``UNIMPLEMENTED`` (§5.5). Every call must carry ``workload.spiffe.io: true`` or is refused
with ``INVALID_ARGUMENT`` by an interceptor before any handler runs (§5.2).

The caller is identified by the kernel, never by anything it sends: the connection's peer
credentials come from :class:`tabard.node.listener.PeerCredentialListener` (see there why
they cannot be spoofed), and the process is attested again on every call and on every
stream update (:func:`tabard.attestation.unix.attest_process`), so a process that exited, or
a pid that was reused, never inherits an identity. Errors map to gRPC codes in one table,
:data:`GRPC_STATUS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography.hazmat.primitives import serialization
from google.protobuf.message import Message

from tabard.attestation.unix import ExecutableHasher, ProcessEvidence, attest_process
from tabard.errors import Denied, Invalid, NotFound, TabardError, Unauthenticated, Unavailable
from tabard.node._proto import workload_pb2 as pb
from tabard.node.agent import NodeAgent, X509View
from tabard.node.listener import PeerCredentialListener
from tabard.spiffe import Bundle, JwtSvidError

_Message = TypeVar("_Message", bound=Message)

__all__ = [
    "GRPC_STATUS",
    "SECURITY_HEADER",
    "WorkloadApiServer",
    "WorkloadApiServicer",
]

log = logging.getLogger("tabard.node")

SECURITY_HEADER = ("workload.spiffe.io", "true")

GRPC_STATUS: tuple[tuple[type[TabardError], grpc.StatusCode], ...] = (
    (Denied, grpc.StatusCode.PERMISSION_DENIED),
    (Unauthenticated, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.PERMISSION_DENIED),
    (Invalid, grpc.StatusCode.INVALID_ARGUMENT),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)
"""Error category → gRPC code, first match wins (§5.7). ``JwtSvidError`` (a token that does
not validate) is ``Unauthenticated`` but answered ``INVALID_ARGUMENT`` by ValidateJWTSVID."""


def _status_of(exc: TabardError) -> grpc.StatusCode:
    for kind, code in GRPC_STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _der(bundle: Bundle) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in bundle.x509_authorities)


def _jwt_jwks(bundle: Bundle) -> bytes:
    """The bundle's JWT-SVID keys only (§5.4 JWTBundlesResponse)."""
    return Bundle(bundle.trust_domain, (), bundle.jwt_authorities, bundle.sequence).to_json()


def x509_response(view: X509View) -> pb.X509SVIDResponse:
    own = _der(view.bundle)
    return pb.X509SVIDResponse(
        svids=[
            pb.X509SVID(
                spiffe_id=str(cred.spiffe_id),
                x509_svid=cred.chain_der,
                x509_svid_key=cred.key_der,
                bundle=own,
                hint=entry.hint,
            )
            for entry, cred in view.svids
        ],
        federated_bundles={b.trust_domain.id_string(): _der(b) for b in view.federated},
    )


class _SecurityHeaderInterceptor(grpc.aio.ServerInterceptor):
    """Refuse calls without ``workload.spiffe.io: true`` before any handler runs (§5.2)."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        metadata = handler_call_details.invocation_metadata or ()
        if handler is None or any(tuple(m) == SECURITY_HEADER for m in metadata):
            return handler

        async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "security header missing from request (workload.spiffe.io: true)",
            )

        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                refuse,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            refuse,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


Context = grpc.aio.ServicerContext[Any, Any]


class WorkloadApiServicer:
    """The five RPCs, each attesting its caller first (plus the two WIT ones, refused)."""

    SERVICE = "SpiffeWorkloadAPI"

    def handlers(self) -> grpc.GenericRpcHandler:
        """The service's method table, built from the message classes (``proto/workload.proto``)."""
        stream = grpc.unary_stream_rpc_method_handler
        unary = grpc.unary_unary_rpc_method_handler

        def out(kind: Any) -> Callable[[Any], bytes]:
            return kind.SerializeToString  # type: ignore[no-any-return]

        return grpc.method_handlers_generic_handler(
            self.SERVICE,
            {
                "FetchX509SVID": stream(
                    self.FetchX509SVID,
                    request_deserializer=pb.X509SVIDRequest.FromString,
                    response_serializer=out(pb.X509SVIDResponse),
                ),
                "FetchX509Bundles": stream(
                    self.FetchX509Bundles,
                    request_deserializer=pb.X509BundlesRequest.FromString,
                    response_serializer=out(pb.X509BundlesResponse),
                ),
                "FetchJWTSVID": unary(
                    self.FetchJWTSVID,
                    request_deserializer=pb.JWTSVIDRequest.FromString,
                    response_serializer=out(pb.JWTSVIDResponse),
                ),
                "FetchJWTBundles": stream(
                    self.FetchJWTBundles,
                    request_deserializer=pb.JWTBundlesRequest.FromString,
                    response_serializer=out(pb.JWTBundlesResponse),
                ),
                "ValidateJWTSVID": unary(
                    self.ValidateJWTSVID,
                    request_deserializer=pb.ValidateJWTSVIDRequest.FromString,
                    response_serializer=out(pb.ValidateJWTSVIDResponse),
                ),
                "FetchWITSVID": stream(
                    self.FetchWITSVID,
                    request_deserializer=pb.WITSVIDRequest.FromString,
                    response_serializer=out(pb.WITSVIDResponse),
                ),
                "FetchWITBundles": stream(
                    self.FetchWITBundles,
                    request_deserializer=pb.WITBundlesRequest.FromString,
                    response_serializer=out(pb.WITBundlesResponse),
                ),
            },
        )

    def __init__(
        self,
        agent: NodeAgent,
        listener: PeerCredentialListener,
        *,
        hasher: ExecutableHasher | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._agent = agent
        self._listener = listener
        self._hasher = hasher or ExecutableHasher()
        self._rng = rng or random.SystemRandom()

    async def _caller(self, context: Context) -> ProcessEvidence:
        conn = self._listener.connection_for(context.peer())
        if conn is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "unknown peer")
            raise AssertionError("unreachable")
        try:
            if self._hash_cached(conn.credentials.pid):
                # /proc reads only: cheaper than a thread hop, and on the loop the relay
                # cannot close the pidfd meanwhile
                return attest_process(
                    conn.credentials,
                    pidfd=conn.pidfd,
                    accepted_boot_time=conn.accepted_boot_time,
                    hasher=self._hasher,
                )
            # first sight of this binary: hash it off the loop, on a pidfd of our own
            pidfd = os.dup(conn.pidfd) if conn.pidfd is not None else None
            try:
                return await asyncio.to_thread(
                    functools.partial(
                        attest_process,
                        conn.credentials,
                        pidfd=pidfd,
                        accepted_boot_time=conn.accepted_boot_time,
                        hasher=self._hasher,
                    )
                )
            finally:
                if pidfd is not None:
                    os.close(pidfd)
        except TabardError as exc:
            await self._abort(context, exc)
            raise AssertionError("unreachable") from exc

    def _hash_cached(self, pid: int) -> bool:
        try:
            return self._hasher.has(os.stat(f"/proc/{pid}/exe"))
        except OSError:
            return False

    async def _abort(self, context: Context, exc: TabardError) -> None:
        await context.abort(_status_of(exc), exc.message)

    async def _updates(self, context: Context) -> AsyncIterator[ProcessEvidence]:
        """The caller's evidence now, then again after every change (re-attested each time)."""
        changes = self._agent.changes
        while True:
            version = changes.version
            yield await self._caller(context)
            current = await changes.wait(version)
            jitter = self._agent.timings.push_jitter
            if jitter > 0 and changes.urgent_version != current:
                await asyncio.sleep(self._rng.uniform(0, jitter))

    async def FetchX509SVID(
        self, request: pb.X509SVIDRequest, context: Context
    ) -> AsyncIterator[pb.X509SVIDResponse]:
        last = b""
        async for evidence in self._updates(context):
            try:
                view = await self._agent.x509_view(evidence)
            except TabardError as exc:
                await self._abort(context, exc)
                return
            message = x509_response(view)
            data = message.SerializeToString(deterministic=True)
            if data != last:
                last = data
                yield message

    async def FetchX509Bundles(
        self, request: pb.X509BundlesRequest, context: Context
    ) -> AsyncIterator[pb.X509BundlesResponse]:
        def build(bundles: list[Bundle]) -> pb.X509BundlesResponse:
            return pb.X509BundlesResponse(
                bundles={b.trust_domain.id_string(): _der(b) for b in bundles})

        async for message in self._bundle_stream(context, build):
            yield message

    async def FetchJWTBundles(
        self, request: pb.JWTBundlesRequest, context: Context
    ) -> AsyncIterator[pb.JWTBundlesResponse]:
        def build(bundles: list[Bundle]) -> pb.JWTBundlesResponse:
            return pb.JWTBundlesResponse(
                bundles={b.trust_domain.id_string(): _jwt_jwks(b) for b in bundles})

        async for message in self._bundle_stream(context, build):
            yield message

    async def _bundle_stream(
        self, context: Context, build: Callable[[list[Bundle]], _Message]
    ) -> AsyncIterator[_Message]:
        """The caller's bundles (own trust domain first, then federated ones), sent again
        whenever they change and only then."""
        last = b""
        async for evidence in self._updates(context):
            try:
                own, federated = self._agent.bundles_for(evidence)
            except TabardError as exc:
                await self._abort(context, exc)
                return
            message = build([own, *federated])
            data = message.SerializeToString(deterministic=True)
            if data != last:
                last = data
                yield message

    async def FetchJWTSVID(
        self, request: pb.JWTSVIDRequest, context: Context
    ) -> pb.JWTSVIDResponse:
        if not request.audience or not all(request.audience):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "audience must be set")
        evidence = await self._caller(context)
        try:
            svids = await self._agent.jwt_svids(evidence, list(request.audience), request.spiffe_id)
        except TabardError as exc:
            await self._abort(context, exc)
            raise AssertionError("unreachable") from exc
        return pb.JWTSVIDResponse(
            svids=[pb.JWTSVID(spiffe_id=str(s), svid=token, hint=hint) for s, token, hint in svids]
        )

    async def ValidateJWTSVID(
        self, request: pb.ValidateJWTSVIDRequest, context: Context
    ) -> pb.ValidateJWTSVIDResponse:
        if not request.audience:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "audience must be set")
        if not request.svid:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "svid must be set")
        evidence = await self._caller(context)
        try:
            svid = self._agent.validate_jwt(evidence, request.svid, request.audience)
        except JwtSvidError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid JWT-SVID: {exc}")
            raise AssertionError("unreachable") from exc
        except TabardError as exc:
            await self._abort(context, exc)
            raise AssertionError("unreachable") from exc
        response = pb.ValidateJWTSVIDResponse(spiffe_id=str(svid.spiffe_id))
        response.claims.update(dict(svid.claims))
        return response

    async def FetchWITSVID(
        self, request: pb.WITSVIDRequest, context: Context
    ) -> AsyncIterator[pb.WITSVIDResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the WIT-SVID profile is not served")
        yield pb.WITSVIDResponse()  # pragma: no cover (abort raises)

    async def FetchWITBundles(
        self, request: pb.WITBundlesRequest, context: Context
    ) -> AsyncIterator[pb.WITBundlesResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the WIT-SVID profile is not served")
        yield pb.WITBundlesResponse()  # pragma: no cover


class WorkloadApiServer:
    """The gRPC server on a private socket behind the peer-credential listener."""

    def __init__(
        self,
        agent: NodeAgent,
        socket_path: Path,
        *,
        socket_mode: int = 0o777,
        hasher: ExecutableHasher | None = None,
    ) -> None:
        self.socket_path = socket_path
        self._agent = agent
        self._listener = PeerCredentialListener(socket_path, mode=socket_mode)
        self._servicer = WorkloadApiServicer(agent, self._listener, hasher=hasher)
        self._server: grpc.aio.Server | None = None

    @property
    def uri(self) -> str:
        """``unix:///abs/path``: the form of ``SPIFFE_ENDPOINT_SOCKET`` (§5.1)."""
        return "unix://" + str(self.socket_path)

    @property
    def listener(self) -> PeerCredentialListener:
        return self._listener

    async def start(self) -> None:
        server = grpc.aio.server(
            interceptors=(_SecurityHeaderInterceptor(),),
            options=(("grpc.so_reuseport", 0),),
        )
        server.add_generic_rpc_handlers((self._servicer.handlers(),))
        server.add_insecure_port(self._listener.grpc_target)
        await server.start()
        self._server = server
        await self._listener.start()
        log.info("Workload API listening on %s", self.uri)

    async def stop(self, grace: float = 1.0) -> None:
        await self._listener.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.stop(grace)
            self._server = None
