"""Just-in-time credential providers: what the gateway injects into an upstream request.

A route names one provider; for each request the gateway calls
``provider.issue(context)`` and gets a :class:`Credential`: the headers to add, when they
expire, and the id of the lease recording the issue. The agent never sees the credential.

- :class:`StaticSecretProvider` — a stored secret as a header (``Authorization: Bearer``
  by default, or any header with or without a scheme).
- :class:`ClientCredentialsProvider` — an access token from the upstream's token endpoint
  (RFC 6749 §4.4, https://www.rfc-editor.org/rfc/rfc6749#section-4.4) with the client id and
  secret from the vault and the narrowest scope the operation needs; tokens are cached per
  scope until shortly before they expire.
- :class:`DownstreamJwtProvider` — a short-lived JWT minted by tabard for this request
  (``aud`` = upstream, ``sub`` = user, ``act`` = the agent chain per RFC 8693 §4.1, unique
  ``jti``, TTL at most 60 s), signed through the :class:`DownstreamSigner` port; the upstream
  verifies it against tabard's JWKS.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from tabard.clock import Clock
from tabard.policy.scopes import Scope
from tabard.vault.errors import CredentialUnavailableError, ProviderConfigError
from tabard.vault.leases import Leases, new_lease_id
from tabard.vault.model import ProviderKind, SecretValue

__all__ = [
    "MAX_DOWNSTREAM_JWT_TTL",
    "ClientCredentialsProvider",
    "Credential",
    "CredentialContext",
    "CredentialProvider",
    "DownstreamJwtProvider",
    "DownstreamSigner",
    "SecretReader",
    "StaticSecretProvider",
]

MAX_DOWNSTREAM_JWT_TTL = timedelta(seconds=60)
_HEADER_NAME = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class CredentialContext:
    """Who the credential is for. ``chain`` is the acting agents, nearest first: the calling
    agent instance's SPIFFE ID, then the agents it acts for (the token's ``act`` nesting)."""

    route: str
    upstream: str  # the upstream's audience (its base URL unless the route names another)
    agent: str | None = None
    agent_instance: str | None = None
    user: str | None = None
    chain: Sequence[str] = ()
    scope: Scope = field(default_factory=Scope.unrestricted)  # the delegated scope
    operation: str | None = None  # the operation token, e.g. ``tools:jira.create_issue``


@dataclass(frozen=True, repr=False)
class Credential:
    headers: Mapping[str, str]
    expires_at: datetime | None
    lease_id: str

    def __repr__(self) -> str:  # the header values are credentials
        return (f"Credential(headers={sorted(self.headers)!r}, expires_at={self.expires_at!r},"
                f" lease_id={self.lease_id!r})")


class CredentialProvider(Protocol):
    kind: ProviderKind

    def issue(self, context: CredentialContext) -> Credential: ...

    def issue_now(self, context: CredentialContext) -> Credential | None:
        """:meth:`issue` when it needs neither the database nor the network (the secret
        revealed recently, the lease queued, a cached token); None otherwise, and then the
        caller issues in a worker thread. For callers on an event loop."""
        ...


class SecretReader(Protocol):
    """The vault's in-process reveal (:meth:`tabard.vault.Vault.reveal`)."""

    def reveal(self, name: str, version: int | None = None) -> SecretValue: ...

    def cached(self, name: str) -> SecretValue | None: ...


class DownstreamSigner(Protocol):
    """Signs a downstream token with the authorization server's key; the composition root
    fills it in. Returns the compact JWS."""

    @property
    def issuer(self) -> str: ...

    def sign(self, claims: Mapping[str, Any]) -> str: ...


def _check_header(name: str) -> str:
    if not name or any(c not in _HEADER_NAME for c in name):
        raise ProviderConfigError(f"{name!r} is not an HTTP header name")
    return name


def _header_value(secret: SecretValue) -> str:
    try:
        text = secret.text()
    except UnicodeDecodeError:
        raise ProviderConfigError(
            f"secret {secret.name!r} is not UTF-8 text and cannot go in a header") from None
    if any(c in text for c in "\r\n\x00"):
        raise ProviderConfigError(
            f"secret {secret.name!r} holds a line break and cannot go in a header")
    return text


class StaticSecretProvider:
    """A stored secret injected as a header: ``<header>: <scheme> <value>`` (no scheme when
    ``scheme`` is empty, e.g. ``X-Api-Key: <value>``). Each issue reveals the current
    version, so a rotation takes effect on the next request."""

    kind = ProviderKind.STATIC

    def __init__(self, vault: SecretReader, leases: Leases, clock: Clock, *, secret: str,
                 header: str = "Authorization", scheme: str = "Bearer",
                 lease_ttl: timedelta = timedelta(seconds=60)) -> None:
        self._vault, self._leases, self._clock = vault, leases, clock
        self.secret, self.header, self.scheme = secret, _check_header(header), scheme.strip()
        if lease_ttl <= timedelta(0):
            raise ProviderConfigError("a lease TTL must be positive")
        self.lease_ttl = lease_ttl

    def issue(self, context: CredentialContext) -> Credential:
        return self._issue(context, self._vault.reveal(self.secret))

    def issue_now(self, context: CredentialContext) -> Credential | None:
        value = self._vault.cached(self.secret)
        if value is None or not self._leases.can_queue():
            return None
        return self._issue(context, value)

    def _issue(self, context: CredentialContext, value: SecretValue) -> Credential:
        text = _header_value(value)
        now = self._clock.now()
        lease = self._leases.record(
            provider=self.kind, route=context.route, agent=context.agent,
            agent_instance=context.agent_instance, user=context.user,
            expires_at=now + self.lease_ttl, secret_name=value.name,
            secret_version=value.version, issued_at=now)
        header = f"{self.scheme} {text}" if self.scheme else text
        return Credential({self.header: header}, lease.expires_at, lease.id)


@dataclass(frozen=True, repr=False)
class _CachedToken:
    access_token: str
    token_type: str
    expires_at: datetime
    secret_version: int


class ClientCredentialsProvider:
    """OAuth 2.0 client credentials (RFC 6749 §4.4) against the upstream's token endpoint.

    The client id and secret are vault secrets. The requested ``scope`` is the narrowest the
    operation needs: the upstream scope mapped to the first ``scopes`` pattern (a tabard
    operation glob such as ``tools:jira.*``) that covers the context's operation, else
    ``default_scope`` (empty: no ``scope`` parameter). A token is reused for the same scope
    until ``refresh_margin`` before it expires. Client authentication is HTTP Basic
    (``client_secret_basic``, RFC 6749 §2.3.1, form-encoded id and secret) or the two form
    parameters (``client_secret_post``).
    """

    kind = ProviderKind.CLIENT_CREDENTIALS

    def __init__(self, vault: SecretReader, leases: Leases, clock: Clock, *, token_url: str,
                 client_id_secret: str, client_secret_secret: str,
                 auth_method: str = "client_secret_basic", resource: str | None = None,
                 scopes: Mapping[str, str] | None = None, default_scope: str = "",
                 refresh_margin: timedelta = timedelta(seconds=30),
                 default_ttl: timedelta = timedelta(minutes=5),
                 http: httpx.Client | None = None) -> None:
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ProviderConfigError(
                "auth_method must be client_secret_basic or client_secret_post")
        if not token_url.startswith(("https://", "http://")):
            raise ProviderConfigError("token_url must be an http(s) URL")
        self._vault, self._leases, self._clock = vault, leases, clock
        self.token_url, self.auth_method, self.resource = token_url, auth_method, resource
        self._id_name, self._secret_name = client_id_secret, client_secret_secret
        self.refresh_margin, self.default_ttl = refresh_margin, default_ttl
        self._http = http or httpx.Client(timeout=10.0)
        self._scopes = [(Scope.of([pattern]), str(Scope.parse(upstream)))
                        for pattern, upstream in (scopes or {}).items()]
        self.default_scope = str(Scope.parse(default_scope))
        self._cache: dict[str, _CachedToken] = {}
        self._lock = threading.Lock()

    def scope_for(self, operation: str | None) -> str:
        """The upstream scope to request for an operation token."""
        if operation:
            for pattern, upstream in self._scopes:
                if pattern.allows(operation):
                    return upstream
        return self.default_scope

    def issue(self, context: CredentialContext) -> Credential:
        return self._issue(context, self._token(self.scope_for(context.operation)))

    def issue_now(self, context: CredentialContext) -> Credential | None:
        scope = self.scope_for(context.operation)
        with self._lock:
            cached = self._cache.get(scope)
        if (cached is None or self._clock.now() >= cached.expires_at - self.refresh_margin
                or not self._leases.can_queue()):
            return None
        return self._issue(context, cached)

    def _issue(self, context: CredentialContext, token: _CachedToken) -> Credential:
        lease = self._leases.record(
            provider=self.kind, route=context.route, agent=context.agent,
            agent_instance=context.agent_instance, user=context.user,
            expires_at=token.expires_at, secret_name=self._secret_name,
            secret_version=token.secret_version)
        scheme = "Bearer" if token.token_type.lower() == "bearer" else token.token_type
        return Credential({"Authorization": f"{scheme} {token.access_token}"},
                          token.expires_at, lease.id)

    def invalidate(self) -> None:
        """Forget cached tokens (after the client secret is rotated, or the upstream said 401)."""
        with self._lock:
            self._cache.clear()

    def _token(self, scope: str) -> _CachedToken:
        now = self._clock.now()
        with self._lock:
            cached = self._cache.get(scope)
            if cached is not None and now < cached.expires_at - self.refresh_margin:
                return cached
        token = self._fetch(scope, now)
        with self._lock:
            self._cache[scope] = token
        return token

    def _fetch(self, scope: str, now: datetime) -> _CachedToken:
        client_id = _header_value(self._vault.reveal(self._id_name))
        secret = self._vault.reveal(self._secret_name)
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        if self.resource:
            form["resource"] = self.resource
        headers = {"Accept": "application/json"}
        if self.auth_method == "client_secret_basic":
            pair = f"{quote(client_id, safe='')}:{quote(secret.text(), safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"], form["client_secret"] = client_id, secret.text()
        try:
            response = self._http.post(self.token_url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise CredentialUnavailableError(
                f"the token endpoint {self.token_url} cannot be reached "
                f"({exc.__class__.__name__})") from None
        body = _json_object(response)
        if response.status_code != 200:
            code = body.get("error") if isinstance(body.get("error"), str) else None
            raise CredentialUnavailableError(
                f"the token endpoint {self.token_url} refused the client credentials grant "
                f"(HTTP {response.status_code}" + (f", {code[:64]})" if code else ")"))
        access_token, token_type = body.get("access_token"), body.get("token_type", "Bearer")
        if not isinstance(access_token, str) or not access_token or not isinstance(
                token_type, str) or any(c in access_token for c in "\r\n\x00 "):
            raise CredentialUnavailableError(
                f"the token endpoint {self.token_url} answered without a usable access_token")
        expires_in = body.get("expires_in")
        ttl = (timedelta(seconds=expires_in)
               if isinstance(expires_in, int | float) and expires_in > 0 else self.default_ttl)
        return _CachedToken(access_token, token_type, now + ttl, secret.version)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _act(chain: Sequence[str]) -> dict[str, Any] | None:
    """RFC 8693 §4.1 nesting: the current actor outermost, earlier actors inside."""
    act: dict[str, Any] | None = None
    for actor in reversed(chain):
        act = {"sub": actor} if act is None else {"sub": actor, "act": act}
    return act


class DownstreamJwtProvider:
    """A JWT minted per request for the upstream: ``iss`` = the signer's issuer, ``aud`` =
    the upstream, ``sub`` = the user (the agent instance when it acts for itself), ``act`` =
    the agent chain, ``jti`` = the lease id, ``scope`` when narrowed, ``exp`` ≤ 60 s ahead."""

    kind = ProviderKind.DOWNSTREAM_JWT

    def __init__(self, signer: DownstreamSigner, leases: Leases, clock: Clock, *,
                 ttl: timedelta = MAX_DOWNSTREAM_JWT_TTL, header: str = "Authorization",
                 scheme: str = "Bearer") -> None:
        if not timedelta(0) < ttl <= MAX_DOWNSTREAM_JWT_TTL:
            raise ProviderConfigError("a downstream JWT lives more than 0 and at most 60 s")
        self._signer, self._leases, self._clock = signer, leases, clock
        self.ttl, self.header, self.scheme = ttl, _check_header(header), scheme.strip()

    def issue_now(self, context: CredentialContext) -> Credential | None:
        # signing is CPU work in this process; only a lease insert would wait
        return self.issue(context) if self._leases.can_queue() else None

    def issue(self, context: CredentialContext) -> Credential:
        subject = context.user or context.agent_instance
        if not subject:
            raise ProviderConfigError("a downstream JWT needs a user or an agent instance")
        now = self._clock.now()
        expires = now + self.ttl
        lease_id = new_lease_id()
        claims: dict[str, Any] = {
            "iss": self._signer.issuer, "sub": subject, "aud": context.upstream,
            "iat": int(now.timestamp()), "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()), "jti": lease_id,
        }
        chain = list(context.chain) or ([context.agent_instance]
                                        if context.user and context.agent_instance else [])
        act = _act(chain) if context.user else None
        if act is not None:
            claims["act"] = act
        if context.scope.restricted:
            claims["scope"] = context.scope.claim()
        token = self._signer.sign(claims)
        self._leases.record(
            provider=self.kind, route=context.route, agent=context.agent,
            agent_instance=context.agent_instance, user=context.user, expires_at=expires,
            lease_id=lease_id, issued_at=now)
        value = f"{self.scheme} {token}" if self.scheme else token
        return Credential({self.header: value}, expires, lease_id)
