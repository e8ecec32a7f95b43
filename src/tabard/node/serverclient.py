"""The node API over HTTPS (docs/design/node-api.md): :class:`HttpNodeServerClient`.

Bootstrap (:func:`discover`): ``GET <server>/.well-known/tabard`` names the trust domain, the
node API URL and the bundle URL. Over ``https://`` the REST server is checked against the
system roots or ``--trust-bundle``; over plain ``http://`` (loopback development) the first
bundle is trusted as given, unless the node already holds a bundle from an earlier run, which
then wins (trust on first use, pinned afterwards). Every node API call then goes through
:class:`tabard.node.tls.SpiffeServerTransport`: the server must prove it is
``spiffe://<td>/tabard/server`` under that bundle, and the node authenticates with its SVID.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tabard.authority.keymanager.base import PrivateKey
from tabard.errors import TabardError
from tabard.node.errors import (
    NodeConfigError,
    ServerIdentityError,
    ServerRefusedError,
    ServerRejectedError,
    ServerResponseError,
    ServerUnavailableError,
)
from tabard.node.ports import (
    Entry,
    InstanceGrant,
    InstanceRequest,
    IssuedJwtSvid,
    IssuedX509Svid,
    JwtSvidRequest,
    NodeCredentials,
    SyncSnapshot,
    X509SvidRequest,
)
from tabard.node.tls import SpiffeServerTransport, node_api_context, server_spiffe_id
from tabard.spiffe import Bundle, BundleError, SpiffeId, SpiffeIdError, TrustDomain

__all__ = [
    "MAX_X509_BATCH",
    "Discovery",
    "HttpNodeServerClient",
    "discover",
    "load_trust_bundle",
    "parse_entry",
]

MAX_X509_BATCH = 500
_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class Discovery:
    trust_domain: TrustDomain
    node_api_url: str
    bundle: Bundle


def load_trust_bundle(path: Path) -> ssl.SSLContext:
    """A context trusting the CA certificates in ``path`` (PEM, or a SPIFFE bundle JSON)."""
    data = path.read_bytes()
    try:
        if data.lstrip().startswith(b"{"):
            pem = Bundle.parse(TrustDomain("trust-bundle"), data).x509_pem()
        else:
            certs = x509.load_pem_x509_certificates(data)
            pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    except (ValueError, BundleError) as exc:
        raise NodeConfigError(f"{path}: no CA certificates ({exc})") from exc
    if not pem:
        raise NodeConfigError(f"{path}: no CA certificates")
    return ssl.create_default_context(cadata=pem)


async def discover(
    server_url: str,
    *,
    trust_bundle: Path | None = None,
    pinned_bundle: Bundle | None = None,
    timeout: float = 10.0,
) -> Discovery:
    """Find the node API and the trust domain's bundle from the server's REST URL."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NodeConfigError(f"--server must be an http(s) URL, got {server_url!r}")
    verify: ssl.SSLContext | bool = True
    if parts.scheme == "https" and trust_bundle is not None:
        verify = load_trust_bundle(trust_bundle)
    base = server_url.rstrip("/") + "/"
    async with httpx.AsyncClient(verify=verify, timeout=timeout) as client:
        meta = _json_object(await _get(client, urljoin(base, ".well-known/tabard")))
        try:
            trust_domain = TrustDomain.parse(_str(meta, "trust_domain"))
        except SpiffeIdError as exc:
            raise ServerResponseError(f"bad trust_domain from the server: {exc}") from exc
        node_api_url = urljoin(base, _str(meta, "node_api_url"))
        if urlsplit(node_api_url).scheme != "https":
            raise ServerResponseError("the node API must be served over https")
        if pinned_bundle is not None:
            if pinned_bundle.trust_domain != trust_domain:
                raise NodeConfigError(
                    f"the server is in trust domain {trust_domain}, but this node's data dir "
                    f"belongs to {pinned_bundle.trust_domain}"
                )
            return Discovery(trust_domain, node_api_url, pinned_bundle)
        bundle_path = _str(meta, "bundle_url") if "bundle_url" in meta else "bundle"
        bundle_url = urljoin(base, bundle_path)
        body = await _get(client, bundle_url)
    try:
        bundle = Bundle.parse(trust_domain, body)
    except BundleError as exc:
        raise ServerResponseError(f"the server's bundle is unusable: {exc}") from exc
    return Discovery(trust_domain, node_api_url, bundle)


async def _get(client: httpx.AsyncClient, url: str) -> bytes:
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise ServerUnavailableError(f"cannot reach {url}: {exc}") from exc
    _raise_for_problem(response)
    return response.content


def _raise_for_problem(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    code = None
    detail = ""
    try:
        problem = response.json()
        if isinstance(problem, dict):
            code = problem.get("code") if isinstance(problem.get("code"), str) else None
            detail = str(problem.get("detail") or problem.get("title") or "")[:300]
    except ValueError:
        pass
    message = f"server answered {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        raise ServerRefusedError(message, code=code)
    if 400 <= status < 500 and status not in (408, 429):
        raise ServerRejectedError(message, code=code)
    raise ServerUnavailableError(message)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ServerResponseError("the server's answer is not JSON") from exc
    if not isinstance(value, dict):
        raise ServerResponseError("the server's answer is not a JSON object")
    return value


def _str(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise ServerResponseError(f"the server's answer lacks {name!r}")
    return value


def _opt_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServerResponseError(f"{name!r} must be a string")
    return value


def _int(doc: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = doc.get(name, default)
    if type(value) is not int:
        raise ServerResponseError(f"{name!r} must be an integer")
    return value


def _time(doc: Mapping[str, Any], name: str) -> datetime:
    try:
        when = datetime.fromisoformat(_str(doc, name))
    except ValueError as exc:
        raise ServerResponseError(f"{name!r} is not an RFC 3339 time") from exc
    if when.tzinfo is None:
        raise ServerResponseError(f"{name!r} has no time zone")
    return when


def _spiffe_id(doc: Mapping[str, Any], name: str) -> SpiffeId:
    try:
        return SpiffeId.parse(_str(doc, name))
    except SpiffeIdError as exc:
        raise ServerResponseError(f"{name!r} is not a SPIFFE ID: {exc}") from exc


def _chain(doc: Mapping[str, Any], name: str) -> tuple[x509.Certificate, ...]:
    try:
        chain = tuple(x509.load_pem_x509_certificates(_str(doc, name).encode()))
    except ValueError as exc:
        raise ServerResponseError(f"{name!r} holds no certificate") from exc
    return chain


def _bundle(trust_domain: TrustDomain, value: Any) -> Bundle:
    if not isinstance(value, Mapping):
        raise ServerResponseError("a bundle must be a JSON object")
    try:
        return Bundle.parse(trust_domain, value)
    except BundleError as exc:
        raise ServerResponseError(f"unusable bundle for {trust_domain}: {exc}") from exc


def _strings(doc: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = doc.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ServerResponseError(f"{name!r} must be a list of strings")
    return tuple(value)


def parse_entry(doc: Any) -> Entry:
    """An :class:`Entry` from its node API JSON form."""
    if not isinstance(doc, Mapping):
        raise ServerResponseError("an entry must be a JSON object")
    try:
        federates = tuple(TrustDomain.parse(td) for td in _strings(doc, "federates_with"))
    except SpiffeIdError as exc:
        raise ServerResponseError(f"bad federates_with: {exc}") from exc
    return Entry(
        id=_str(doc, "id"),
        spiffe_id=_str(doc, "spiffe_id"),
        parent_id=_str(doc, "parent_id"),
        selectors=frozenset(_strings(doc, "selectors")),
        x509_svid_ttl=_int(doc, "x509_svid_ttl", 3600),
        jwt_svid_ttl=_int(doc, "jwt_svid_ttl", 300),
        dns_names=_strings(doc, "dns_names"),
        federates_with=federates,
        hint=_opt_str(doc, "hint") or "",
        revision=_int(doc, "revision", 0),
        created_at=_opt_str(doc, "created_at") or "",
    )


class HttpNodeServerClient:
    """:class:`tabard.node.ports.NodeServerClient` over HTTPS with mTLS (module docstring)."""

    def __init__(self, discovery: Discovery, *, timeout: httpx.Timeout = _TIMEOUT) -> None:
        self._base = discovery.node_api_url.rstrip("/") + "/"
        self._trust_domain = discovery.trust_domain
        self._server_id = server_spiffe_id(discovery.trust_domain)
        self._timeout = timeout
        self._bundle = discovery.bundle
        self._client = self._make_client(node_api_context(discovery.bundle))
        self._retired: list[httpx.AsyncClient] = []

    @property
    def trust_domain(self) -> TrustDomain:
        return self._trust_domain

    @property
    def node_api_url(self) -> str:
        return self._base

    def http(self) -> httpx.AsyncClient:
        """The current mTLS client (it changes when the node SVID is renewed): for the
        signal stream, which the node follows on the same connection settings."""
        return self._client

    def _make_client(self, ctx: ssl.SSLContext) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=SpiffeServerTransport(ctx, self._server_id),
            timeout=self._timeout,
            headers={"accept": "application/json"},
        )

    def use_credentials(
        self, chain: Sequence[x509.Certificate], key: PrivateKey, bundle: Bundle
    ) -> None:
        self._bundle = bundle
        self._retired.append(self._client)
        self._client = self._make_client(node_api_context(bundle, chain=chain, key=key))

    async def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        while self._retired:
            await self._retired.pop().aclose()
        try:
            response = await self._client.post(urljoin(self._base, path), json=body)
        except ServerIdentityError:
            raise
        except httpx.HTTPError as exc:
            raise ServerUnavailableError(f"node API unreachable: {exc}") from exc
        _raise_for_problem(response)
        return _json_object(response.content)

    def _credentials(self, doc: Mapping[str, Any]) -> NodeCredentials:
        spiffe_id = _spiffe_id(doc, "spiffe_id")
        if spiffe_id.trust_domain != self._trust_domain:
            raise ServerResponseError("the node SVID is for another trust domain")
        return NodeCredentials(
            node_id=_str(doc, "node_id"),
            spiffe_id=spiffe_id,
            chain=_chain(doc, "svid_pem"),
            expires_at=_time(doc, "expires_at"),
            bundle=_bundle(self._trust_domain, doc.get("bundle")),
        )

    async def attest(self, join_token: str, csr_pem: str) -> NodeCredentials:
        doc = await self._post(
            "node/v1/attest",
            {"attestor": "join_token", "join_token": join_token, "csr": csr_pem},
        )
        return self._credentials(doc)

    async def renew(self, csr_pem: str) -> NodeCredentials:
        return self._credentials(await self._post("node/v1/renew", {"csr": csr_pem}))

    async def sync(self) -> SyncSnapshot:
        doc = await self._post("node/v1/sync", {})
        entries = doc.get("entries")
        if not isinstance(entries, list):
            raise ServerResponseError("'entries' must be a list")
        federated_doc = doc.get("federated_bundles") or {}
        if not isinstance(federated_doc, Mapping):
            raise ServerResponseError("'federated_bundles' must be an object")
        federated: dict[TrustDomain, Bundle] = {}
        for name, jwks in federated_doc.items():
            try:
                td = TrustDomain.parse(name)
            except SpiffeIdError as exc:
                raise ServerResponseError(f"bad federated trust domain: {exc}") from exc
            federated[td] = _bundle(td, jwks)
        return SyncSnapshot(
            revision=_int(doc, "revision"),
            entries=tuple(parse_entry(e) for e in entries),
            bundle=_bundle(self._trust_domain, doc.get("bundle")),
            federated_bundles=federated,
        )

    async def register_instance(self, request: InstanceRequest) -> InstanceGrant:
        ev = request.evidence
        doc = await self._post(
            "node/v1/instances",
            {
                "entry_id": request.entry_id,
                "pid": ev.pid,
                "start_time": ev.start_time,
                "uid": ev.uid,
                "gid": ev.gid,
                "exe_path": ev.exe_path,
                "exe_sha256": ev.exe_sha256,
                "selectors": list(ev.selectors()),
                "parent_instance_id": request.parent_instance_id,
            },
        )
        return InstanceGrant(
            instance_id=_str(doc, "instance_id"),
            spiffe_id=_spiffe_id(doc, "spiffe_id"),
            created=bool(doc.get("created", False)),
        )

    async def mint_x509_svids(self, requests: Sequence[X509SvidRequest]) -> list[IssuedX509Svid]:
        if len(requests) > MAX_X509_BATCH:
            raise ValueError(f"at most {MAX_X509_BATCH} X509-SVID requests per call")
        doc = await self._post(
            "node/v1/svids/x509",
            {
                "requests": [
                    {"entry_id": r.entry_id, "instance_id": r.instance_id, "csr": r.csr_pem}
                    for r in requests
                ]
            },
        )
        svids = doc.get("svids")
        if not isinstance(svids, list):
            raise ServerResponseError("'svids' must be a list")
        out = []
        for item in svids:
            if not isinstance(item, Mapping):
                raise ServerResponseError("an SVID must be a JSON object")
            out.append(
                IssuedX509Svid(
                    entry_id=_str(item, "entry_id"),
                    instance_id=_opt_str(item, "instance_id"),
                    spiffe_id=_spiffe_id(item, "spiffe_id"),
                    chain=_chain(item, "svid_pem"),
                    expires_at=_time(item, "expires_at"),
                )
            )
        return out

    async def mint_jwt_svid(self, request: JwtSvidRequest) -> IssuedJwtSvid:
        doc = await self._post(
            "node/v1/svids/jwt",
            {
                "entry_id": request.entry_id,
                "instance_id": request.instance_id,
                "audience": list(request.audience),
                "ttl_seconds": request.ttl_seconds,
            },
        )
        return IssuedJwtSvid(
            spiffe_id=_spiffe_id(doc, "spiffe_id"),
            token=_str(doc, "token"),
            expires_at=_time(doc, "expires_at"),
        )

    async def report_seen(self, instance_ids: Sequence[str]) -> int:
        doc = await self._post("node/v1/instances/seen", {"instance_ids": list(instance_ids)})
        return _int(doc, "updated", 0)

    async def aclose(self) -> None:
        for client in (*self._retired, self._client):
            with contextlib.suppress(httpx.HTTPError, TabardError, OSError):
                await client.aclose()
        self._retired.clear()
