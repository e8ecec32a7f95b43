"""The authorization server: client authentication, the grants, introspection, revocation,
registration and metadata (``docs/design/oauth.md``).

Specs: RFC 6749 (errors, client credentials), RFC 8693 (token exchange, ``act``,
``may_act``), RFC 9068 (JWT access tokens), RFC 8707 (``resource``), RFC 7523 (JWT bearer
grant and ``private_key_jwt``), draft-ietf-oauth-spiffe-client-auth (JWT-SVID and X509-SVID
client authentication), draft-ietf-oauth-identity-assertion-authz-grant (ID-JAG), RFC 8705
(certificate-bound tokens), RFC 7662, RFC 7009, RFC 7591, RFC 8414; the agent checksum claim
follows the Agentic JWT draft (STANDARDS.md §9). Written here because the OAuth library
tabard's tests use as a client has no server side for token exchange or SPIFFE clients.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt as pyjwt
from cryptography import x509

from tabard.audit import AuditEvent, AuditKind, AuditLog, AuditUnavailableError, What, Who
from tabard.clock import Clock
from tabard.errors import Invalid, Unavailable
from tabard.oauth.errors import (
    InvalidClient,
    InvalidClientMetadata,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidSoftwareStatement,
    InvalidTarget,
    InvalidToken,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from tabard.oauth.issuers import TrustedIssuer
from tabard.oauth.jwts import (
    ASYMMETRIC_ALGORITHMS,
    JwtInvalid,
    KeyResolver,
    audiences_of,
    key_resolver_for,
    unverified_claims,
    verify_jwt,
)
from tabard.oauth.keys import SigningKeys
from tabard.oauth.ports import (
    AgentFacts,
    AgentLookup,
    ClientStore,
    IssuedToken,
    OAuthClient,
    TokenStore,
    UserLookup,
)
from tabard.oauth.verified import VerifiedTokenCache
from tabard.policy.scopes import Scope, ScopeError
from tabard.spiffe import (
    Bundle,
    JwtSvidError,
    SpiffeId,
    SpiffeIdError,
    X509SvidError,
    verify_jwt_svid,
    verify_x509_svid,
)

__all__ = [
    "ASSERTION_JWT_BEARER",
    "ASSERTION_JWT_SPIFFE",
    "DEMO_ISSUER_PATH",
    "GRANT_CLIENT_CREDENTIALS",
    "GRANT_JWT_BEARER",
    "GRANT_TOKEN_EXCHANGE",
    "ID_JAG_PROFILE",
    "ID_JAG_TYP",
    "TOKEN_TYPE_ACCESS",
    "TOKEN_TYPE_ID",
    "TOKEN_TYPE_JWT",
    "AuthorizationServer",
    "Client",
    "DemoIssuerDisabled",
    "DownstreamJwtSigner",
    "agent_name_of",
]

GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_TYPE_ID = "urn:ietf:params:oauth:token-type:id_token"
ASSERTION_JWT_SPIFFE = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"
ASSERTION_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
ID_JAG_TYP = "oauth-id-jag+jwt"
AT_JWT_TYP = "at+jwt"
DEMO_ISSUER_PATH = "/dev/issuer"

_SUBJECT_TYPES = (TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT, TOKEN_TYPE_ID)
_REPEATABLE = frozenset({"resource", "audience"})
_LEEWAY = 30.0
_MAX_PARAM = 16 * 1024
_CHECKSUM_PREFIX = "sha256:"
_MAX_ASSERTION_LIFETIME = 300.0
"""The longest a ``private_key_jwt`` assertion may live (``exp - iat``, or ``exp - now``)."""


class DemoIssuerDisabled(Invalid):
    """The demo user issuer exists only under ``tabard dev``."""

    code = "demo_issuer_disabled"

log = logging.getLogger("tabard.oauth")


def agent_name_of(spiffe_id: SpiffeId) -> str | None:
    """``name`` for ``spiffe://td/agent/<name>/instance/<id>``, else None."""
    s = spiffe_id.segments
    if len(s) == 4 and s[0] == "agent" and s[2] == "instance":
        return s[1]
    return None


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated client. ``method`` is ``jwt-spiffe``, ``tls_client_auth`` or
    ``private_key_jwt``; ``agent`` names the agent definition of an agent instance;
    ``certificate_thumbprint`` (``x5t#S256``) is set when it authenticated with mTLS."""

    client_id: str
    method: str
    spiffe_id: SpiffeId | None = None
    agent: str | None = None
    registered: OAuthClient | None = None
    certificate_thumbprint: str | None = None


@dataclass(frozen=True, slots=True)
class _Subject:
    """A verified subject token or assertion: who, within what scope, until when."""

    subject: str
    scope: Scope
    expires: float
    act: Mapping[str, Any] | None = None
    may_act: Mapping[str, Any] | None = None
    parent_jti: str | None = None
    agent_proof: Mapping[str, Any] | None = None
    resources: tuple[str, ...] = ()
    user_token: bool = True
    audiences: tuple[str, ...] = ()
    """For a tabard token: its ``aud`` (the parties it was issued to)."""
    user_issuer: str | None = None
    """The trusted issuer that vouched for the user (kept in the token as ``sub_id``)."""

    @property
    def own(self) -> bool:
        """A tabard access token (exchanged again), not a user's token."""
        return self.parent_jti is not None

    @property
    def current_actor(self) -> str | None:
        """Who holds a tabard token: its outermost ``act``, or for an agent-as-principal
        token (no ``act``) the agent instance that is its subject."""
        if self.act is not None:
            return str(self.act.get("sub"))
        return None if self.user_token else self.subject


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _form_value(form: Mapping[str, Sequence[str]], name: str, *,
                required: bool = False) -> str | None:
    values = form.get(name) or ()
    if len(values) > 1 and name not in _REPEATABLE:
        raise InvalidRequest(f"parameter {name!r} is repeated")
    value = values[0] if values else None
    if value is not None and len(value) > _MAX_PARAM:
        raise InvalidRequest(f"parameter {name!r} is too long")
    if value in (None, "") and required:
        raise InvalidRequest(f"parameter {name!r} is required")
    return value or None


def _depth(act: Mapping[str, Any] | None) -> int:
    depth = 0
    while isinstance(act, Mapping):
        depth += 1
        act = act.get("act")
    return depth


def _chain(act: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The actors of an ``act`` claim from the first (nearest the user) to the current one."""
    actors: list[str] = []
    while isinstance(act, Mapping):
        actors.append(str(act.get("sub")))
        act = act.get("act")
    return tuple(reversed(actors))


def _agent_of(value: str) -> str | None:
    """The agent name of an agent instance SPIFFE ID given as a string, else None."""
    try:
        return agent_name_of(SpiffeId.parse(value))
    except SpiffeIdError:
        return None


def _user_issuer(claims: Mapping[str, Any]) -> str | None:
    sub_id = claims.get("sub_id")
    if isinstance(sub_id, Mapping) and sub_id.get("format") == "iss_sub":
        iss = sub_id.get("iss")
        return iss if isinstance(iss, str) else None
    return None


def _is_id_jag(header: Mapping[str, Any]) -> bool:
    return str(header.get("typ", "")).lower().removeprefix("application/") == ID_JAG_TYP


def _checksum_claim(hex_digest: str) -> str:
    return hex_digest if hex_digest.startswith(_CHECKSUM_PREFIX) else _CHECKSUM_PREFIX + hex_digest


class _ReplayCache:
    """``jti`` values of ``private_key_jwt`` assertions seen until they expire (RFC 7523
    §3 item 7), per process. Entries leave only once expired (a heap ordered by expiry, not
    by arrival); when the cache is full of live entries a new assertion is refused rather
    than a live one forgotten, which would let it be replayed. With assertion lifetimes
    capped at :data:`_MAX_ASSERTION_LIFETIME`, the size bounds the assertion rate."""

    def __init__(self, size: int = 100_000) -> None:
        self._seen: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        self._size = size
        self._lock = threading.Lock()

    def first_use(self, key: str, expires: float, now: float) -> bool:
        """True the first time ``key`` is seen; False for a replay. :class:`
        TemporarilyUnavailable` when no room is left."""
        with self._lock:
            while self._expiry and self._expiry[0][0] < now:
                _exp, old = heapq.heappop(self._expiry)
                self._seen.pop(old, None)
            if key in self._seen:
                return False
            if len(self._seen) >= self._size:
                raise TemporarilyUnavailable("too many client assertions in flight to check "
                                             "them for replay; retry shortly")
            self._seen[key] = expires
            heapq.heappush(self._expiry, (expires, key))
            return True


class AuthorizationServer:
    """The OAuth 2 AS of one trust domain. Its issuer is the server's public URL, known once
    the server listens (:meth:`bind`) unless configured."""

    def __init__(
        self,
        *,
        bundle: Callable[[], Bundle],
        keys: SigningKeys,
        tokens: TokenStore,
        clients: ClientStore,
        agents: AgentLookup,
        users: UserLookup,
        clock: Clock,
        access_token_ttl: timedelta = timedelta(minutes=5),
        max_chain_depth: int = 4,
        trusted_issuers: Sequence[TrustedIssuer] = (),
        allowed_resources: Sequence[str] = (),
        demo_keys: SigningKeys | None = None,
        issuer: str | None = None,
        audit: AuditLog | None = None,
        verified_cache: VerifiedTokenCache | None = None,
    ) -> None:
        self._bundle = bundle
        # off unless given: only the composition root knows the deployment's freshness window
        self.verified = (verified_cache if verified_cache is not None
                         else VerifiedTokenCache(window=0))
        self._audit = audit
        self._keys = keys
        self._tokens = tokens
        self._clients = clients
        self._agents = agents
        self._users = users
        self._clock = clock
        self._ttl = access_token_ttl
        self._max_depth = max_chain_depth
        self._trusted = {i.issuer.rstrip("/"): i for i in trusted_issuers}
        self._allowed_resources = tuple(allowed_resources)
        self._demo_keys = demo_keys
        self._issuer = issuer.rstrip("/") if issuer else None
        self._mtls_base: str | None = None
        self._replay = _ReplayCache()
        self._own = key_resolver_for(self._keys.public_key)

    # --- identity of the AS -----------------------------------------------------------------

    def bind(self, server_url: str, mtls_url: str | None = None) -> None:
        """Set the issuer (unless configured) and the mTLS endpoint base once listening."""
        if self._issuer is None:
            self._issuer = server_url.rstrip("/")
        self._mtls_base = mtls_url.rstrip("/") if mtls_url else None

    @property
    def issuer(self) -> str:
        if self._issuer is None:
            raise Unavailable("the authorization server is not serving yet")
        return self._issuer

    @property
    def demo_issuer(self) -> str | None:
        return self.issuer + DEMO_ISSUER_PATH if self._demo_keys is not None else None

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        base = self.issuer
        endpoints = {
            "token_endpoint": f"{base}/oauth/token",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "revocation_endpoint": f"{base}/oauth/revoke",
        }
        auth_methods = ["private_key_jwt", "tls_client_auth"]
        algs = ["ES256", "ES384", "RS256", "PS256"]
        document: dict[str, Any] = {
            "issuer": base,
            **endpoints,
            "registration_endpoint": f"{base}/oauth/register",
            "jwks_uri": f"{base}/oauth/jwks",
            # RFC 8414 requires the member; without an authorization endpoint the only
            # response type is "none" (OAuth 2.0 Multiple Response Type Encoding Practices)
            "response_types_supported": ["none"],
            "grant_types_supported": [GRANT_TOKEN_EXCHANGE, GRANT_JWT_BEARER,
                                      GRANT_CLIENT_CREDENTIALS],
            "token_endpoint_auth_methods_supported": auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "client_assertion_types_supported": [ASSERTION_JWT_SPIFFE, ASSERTION_JWT_BEARER],
            # an admin token as bearer is accepted too (tabard's own operators)
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
            "authorization_grant_profiles_supported": [ID_JAG_PROFILE],
            "tls_client_certificate_bound_access_tokens": True,
            "service_documentation": "https://tabard.dev/docs/design/oauth",
        }
        if self._mtls_base is not None:
            document["mtls_endpoint_aliases"] = {
                name: url.replace(base, self._mtls_base, 1) for name, url in endpoints.items()
            }
        return document

    def jwks(self) -> dict[str, Any]:
        return self._keys.jwks()

    # --- the demo user issuer ---------------------------------------------------------------

    def demo_jwks(self) -> dict[str, Any]:
        if self._demo_keys is None:
            raise DemoIssuerDisabled("the demo user issuer runs only under `tabard dev`")
        return self._demo_keys.jwks()

    def mint_user_token(self, user: str, *, audience: str | None = None,
                        scope: str | None = None,
                        ttl: timedelta = timedelta(minutes=15)) -> str:
        """A user token from the demo issuer for an active person of the directory."""
        if self._demo_keys is None or self.demo_issuer is None:
            raise DemoIssuerDisabled("the demo user issuer runs only under `tabard dev`")
        if self._users.user_active(user) is not True:
            raise Invalid(f"{user!r} is not an active person in tabard's directory")
        if scope is not None:
            try:
                Scope.parse(scope)
            except ScopeError as exc:
                raise Invalid(str(exc)) from None
        now = int(self._clock.timestamp())
        claims: dict[str, Any] = {
            "iss": self.demo_issuer, "sub": user, "aud": audience or self.issuer,
            "iat": now, "exp": now + max(1, int(ttl.total_seconds())),
            "jti": secrets.token_urlsafe(16),
        }
        if scope is not None:
            claims["scope"] = scope
        key = self._demo_keys.active
        return pyjwt.encode(claims, key.private_key, algorithm=key.algorithm,
                            headers={"kid": key.kid, "typ": "JWT"})

    # --- client authentication --------------------------------------------------------------

    def authenticate_client(self, form: Mapping[str, Sequence[str]],
                            tls_chain: Sequence[bytes] = ()) -> Client:
        """RFC 6749 §2.3 with the SPIFFE draft's JWT-SVID and X509-SVID methods and RFC
        7523 ``private_key_jwt``; :class:`InvalidClient` (401) when none succeeds."""
        assertion_type = _form_value(form, "client_assertion_type")
        assertion = _form_value(form, "client_assertion")
        client_id = _form_value(form, "client_id")
        if assertion_type == ASSERTION_JWT_SPIFFE:
            return self._spiffe_jwt_client(assertion, client_id)
        if assertion_type == ASSERTION_JWT_BEARER:
            return self._private_key_jwt_client(assertion, client_id)
        if assertion_type is not None:
            raise InvalidClient(f"client_assertion_type {assertion_type!r} is not supported")
        if tls_chain:
            return self._mtls_client(tls_chain, client_id)
        raise InvalidClient("client authentication is required (a JWT-SVID client assertion, "
                            "an X509-SVID over mTLS, or private_key_jwt)")

    def _spiffe_client(self, spiffe_id: SpiffeId, method: str,
                       thumbprint: str | None = None) -> Client:
        registered = self._clients.get(str(spiffe_id))
        agent = agent_name_of(spiffe_id)
        if agent is None and registered is None:
            raise InvalidClient(f"{spiffe_id} is neither an agent instance nor a registered "
                                "client")
        return Client(str(spiffe_id), method, spiffe_id, agent, registered, thumbprint)

    def _spiffe_jwt_client(self, assertion: str | None, client_id: str | None) -> Client:
        if not assertion:
            raise InvalidClient("client_assertion is required")
        try:
            svid = verify_jwt_svid(assertion, self._bundle(), self.issuer,
                                   now=self._clock.timestamp(), leeway=_LEEWAY)
        except JwtSvidError as exc:
            raise InvalidClient(f"the JWT-SVID client assertion is not valid: {exc}") from None
        if svid.audience != (self.issuer,):
            raise InvalidClient("the JWT-SVID client assertion must have the AS issuer as its "
                                "only audience")
        if client_id is not None and client_id != str(svid.spiffe_id):
            raise InvalidClient("client_id does not match the JWT-SVID's SPIFFE ID")
        return self._spiffe_client(svid.spiffe_id, "jwt-spiffe")

    def _mtls_client(self, chain_der: Sequence[bytes], client_id: str | None) -> Client:
        if client_id is None:
            raise InvalidClient("client_id is required with mTLS client authentication")
        try:
            chain = [x509.load_der_x509_certificate(der) for der in chain_der]
            spiffe_id = verify_x509_svid(chain, self._bundle(), at=self._clock.now())
        except (ValueError, X509SvidError) as exc:
            raise InvalidClient(f"the client certificate is not a valid X509-SVID of this "
                                f"trust domain: {exc}") from None
        if client_id != str(spiffe_id):
            raise InvalidClient("client_id does not match the certificate's SPIFFE ID")
        thumbprint = _b64(hashlib.sha256(chain_der[0]).digest())
        return self._spiffe_client(spiffe_id, "tls_client_auth", thumbprint)

    def _private_key_jwt_client(self, assertion: str | None, client_id: str | None) -> Client:
        if not assertion:
            raise InvalidClient("client_assertion is required")
        try:
            _header, claims = unverified_claims(assertion)
        except JwtInvalid as exc:
            raise InvalidClient(f"client_assertion: {exc}") from None
        iss, sub = claims.get("iss"), claims.get("sub")
        if not isinstance(sub, str) or iss != sub or (client_id is not None and client_id != sub):
            raise InvalidClient("a private_key_jwt assertion needs iss = sub = client_id")
        registered = self._clients.get(sub)
        if registered is None or registered.auth_method != "private_key_jwt" \
                or not registered.jwks:
            raise InvalidClient(f"no private_key_jwt client {sub!r} is registered")
        try:
            verified = verify_jwt(assertion, _jwks_resolver(registered.jwks),
                                  now=self._clock.timestamp(), leeway=_LEEWAY,
                                  required=("exp", "iss", "sub", "aud"))
        except JwtInvalid as exc:
            raise InvalidClient(f"client_assertion: {exc}") from None
        audiences = audiences_of(verified.claims)
        if self.issuer not in audiences and f"{self.issuer}/oauth/token" not in audiences:
            raise InvalidClient("the client assertion's audience must be the AS issuer")
        jti = verified.claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidClient("the client assertion needs a jti (it is single use)")
        now = self._clock.timestamp()
        exp = float(verified.claims["exp"])
        iat = verified.claims.get("iat")
        start = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) \
            else now
        if exp - start > _MAX_ASSERTION_LIFETIME:
            raise InvalidClient(f"the client assertion may live at most "
                                f"{int(_MAX_ASSERTION_LIFETIME)} seconds (exp - iat)")
        if not self._replay.first_use(f"{sub}\0{jti}", exp + _LEEWAY, now):
            raise InvalidClient("the client assertion was already used")
        return Client(sub, "private_key_jwt", registered=registered)

    # --- the token endpoint -----------------------------------------------------------------

    def token(self, form: Mapping[str, Sequence[str]],
              tls_chain: Sequence[bytes] = ()) -> dict[str, Any]:
        """Answer a token request (RFC 6749 §5.1 body) or raise an :class:`OAuthError`."""
        grant_type = _form_value(form, "grant_type", required=True)
        if grant_type not in (GRANT_TOKEN_EXCHANGE, GRANT_JWT_BEARER, GRANT_CLIENT_CREDENTIALS):
            raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
        client = self.authenticate_client(form, tls_chain)
        registered = client.registered
        if registered is not None and registered.grant_types \
                and grant_type not in registered.grant_types:
            raise UnauthorizedClient(f"the client is not registered for {grant_type}")
        if grant_type == GRANT_TOKEN_EXCHANGE:
            return self._token_exchange(form, client)
        if grant_type == GRANT_JWT_BEARER:
            return self._jwt_bearer(form, client)
        return self._client_credentials(form, client)

    def _token_exchange(self, form: Mapping[str, Sequence[str]],
                        client: Client) -> dict[str, Any]:
        """RFC 8693 §2.1: the subject is the user (or a tabard token for them), the actor
        the agent instance; the new token nests the previous ``act`` below the new one."""
        requested = _form_value(form, "requested_token_type")
        if requested not in (None, TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT):
            raise InvalidRequest(f"requested_token_type {requested!r} is not supported")
        subject_token = _form_value(form, "subject_token", required=True)
        subject_type = _form_value(form, "subject_token_type", required=True)
        if subject_type not in _SUBJECT_TYPES:
            raise InvalidRequest(f"subject_token_type {subject_type!r} is not supported")
        actor_token = _form_value(form, "actor_token")
        actor_type = _form_value(form, "actor_token_type")
        if (actor_token is None) != (actor_type is None):
            raise InvalidRequest("actor_token and actor_token_type go together")
        assert subject_token is not None
        subject = self._subject(subject_token)
        actor = self._actor(actor_token, actor_type, client)
        agent = self._acting_agent(actor, subject)
        self._check_may_act(subject, str(actor), "subject token")
        if subject.own and subject.current_actor == str(actor):
            # the holder exchanges its own token again (another resource, a narrower scope):
            # the chain stays as it is
            act = dict(subject.act) if subject.act is not None else None
            return self._issue(form, client, subject, act=act, agent=agent)
        if subject.own:
            self._check_delegated_to(subject, actor)
        new_act: dict[str, Any] = {"sub": str(actor)}
        if subject.act is not None:
            new_act["act"] = dict(subject.act)
        if _depth(new_act) > self._max_depth:
            raise InvalidGrant(f"the delegation chain would exceed the maximum depth of "
                               f"{self._max_depth}")
        return self._issue(form, client, subject, act=new_act, agent=agent)

    def _check_delegated_to(self, subject: _Subject, actor: SpiffeId) -> None:
        """A tabard token extends the chain only for a party it was issued to: the new actor
        (its instance ID, or its agent ``spiffe://td/agent/<name>``) must be one of its
        audiences. An agent hands work to a sub-agent by exchanging for a token whose
        ``resource`` is the sub-agent; a token for a tool server cannot be re-delegated."""
        name = agent_name_of(actor)
        accepted = {str(actor)}
        if name is not None:
            accepted.add(f"spiffe://{actor.trust_domain}/agent/{name}")
        if not accepted & set(subject.audiences):
            raise InvalidGrant(f"the subject token was not issued to {actor}: to delegate, "
                               "its holder exchanges it for a token whose resource is the "
                               "sub-agent (spiffe://<td>/agent/<name>)")

    def _jwt_bearer(self, form: Mapping[str, Sequence[str]], client: Client) -> dict[str, Any]:
        """RFC 7523 §2.1 with the ID-JAG profile only: ``typ`` ``oauth-id-jag+jwt`` from a
        trusted issuer, ``aud`` exactly the AS issuer, ``client_id`` the client. Other JWTs
        (plain IdP tokens, demo tokens) are subject tokens of token exchange, never
        assertions here, so neither grant accepts the other's tokens."""
        assertion = _form_value(form, "assertion", required=True)
        assert assertion is not None
        try:
            header, _claims = unverified_claims(assertion)
        except JwtInvalid as exc:
            raise InvalidGrant(f"assertion: {exc}") from None
        if not _is_id_jag(header):
            raise InvalidGrant(f"the jwt-bearer grant accepts only an ID-JAG (typ "
                               f"{ID_JAG_TYP}); exchange other user tokens with token exchange")
        subject = self._user_assertion(assertion, client=client)
        act: dict[str, Any] | None = None
        agent: AgentFacts | None = None
        # the party that becomes the actor is the client (the agent instance, if it is one)
        self._check_may_act(subject, client.client_id, "assertion")
        if client.spiffe_id is not None and client.agent is not None:
            agent = self._acting_agent(client.spiffe_id, subject)
            act = {"sub": client.client_id}
        return self._issue(form, client, subject, act=act, agent=agent)

    def _client_credentials(self, form: Mapping[str, Sequence[str]],
                            client: Client) -> dict[str, Any]:
        """RFC 6749 §4.4, only for agents whose definition says ``agent_as_principal``."""
        if client.agent is None or client.spiffe_id is None:
            raise UnauthorizedClient("client_credentials is only for agent-as-principal agents")
        facts = self._agent_facts(client.agent)
        if facts.delegation != "agent_as_principal":
            raise UnauthorizedClient(f"agent {facts.name} acts for users ({facts.delegation}); "
                                     "client_credentials is only for agent-as-principal agents")
        self._check_checksum_pending(facts)
        subject = _Subject(subject=client.client_id, scope=Scope.unrestricted(),
                           expires=float("inf"), user_token=False)
        return self._issue(form, client, subject, act=None, agent=facts)

    # --- the parties ------------------------------------------------------------------------

    def _subject(self, token: str) -> _Subject:
        """A subject token: a tabard access token, or a user token from a trusted issuer.
        Invalid tokens are ``invalid_request`` (RFC 8693 §2.2.2)."""
        try:
            header, claims = unverified_claims(token)
        except JwtInvalid as exc:
            raise InvalidRequest(f"subject_token: {exc}") from None
        if _is_id_jag(header):
            raise InvalidRequest("subject_token: an ID-JAG is redeemed with the jwt-bearer "
                                 "grant, not exchanged")
        iss = claims.get("iss")
        if iss == self.issuer:
            return self._own_token_subject(token)
        issuer = self._issuer_for(iss)
        if issuer is None:
            raise InvalidRequest(f"subject_token: issuer {str(iss)[:200]!r} is not trusted")
        try:
            verified = verify_jwt(token, issuer.resolve, now=self._clock.timestamp(),
                                  leeway=_LEEWAY, required=("exp", "sub", "iss"))
        except JwtInvalid as exc:
            raise InvalidRequest(f"subject_token: {exc}") from None
        accepted = issuer.audiences or (self.issuer,)
        if not set(audiences_of(verified.claims)) & set(accepted):
            raise InvalidRequest("subject_token: its audience is not accepted by this AS")
        return self._user_subject(verified.claims, issuer)

    def _issuer_for(self, iss: object) -> TrustedIssuer | None:
        if not isinstance(iss, str):
            return None
        if self._demo_keys is not None and iss == self.demo_issuer:
            return TrustedIssuer(iss, key_resolver_for(self._demo_keys.public_key),
                                 require_directory_user=True)
        return self._trusted.get(iss.rstrip("/"))

    def _user_subject(self, claims: Mapping[str, Any], issuer: TrustedIssuer) -> _Subject:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidRequest("the user token has no subject")
        known = self._users.user_active(sub)
        if known is False or (known is None and issuer.require_directory_user):
            raise InvalidGrant(f"user {sub!r} is not an active person in tabard's directory")
        try:
            scope = Scope.parse(claims["scope"]) if "scope" in claims else Scope.unrestricted()
        except ScopeError as exc:
            raise InvalidRequest(f"the user token's scope: {exc}") from None
        may_act = claims.get("may_act")
        if may_act is not None and not isinstance(may_act, Mapping):
            raise InvalidGrant("the user token's may_act must be a JSON object")
        resource = claims.get("resource")
        resources = (resource,) if isinstance(resource, str) else tuple(
            r for r in resource if isinstance(r, str)) if isinstance(resource, list) else ()
        return _Subject(subject=sub, scope=scope, expires=float(claims["exp"]),
                        may_act=may_act, resources=resources, user_issuer=issuer.issuer)

    def _own_token_subject(self, token: str) -> _Subject:
        record, claims = self._verify_own(token)
        if record is None:
            raise InvalidRequest("subject_token: not an active token of this AS")
        agent_proof = claims.get("agent_proof")
        act = claims.get("act")
        may_act = claims.get("may_act")
        return _Subject(
            subject=record.subject,
            scope=Scope.parse(record.scope),
            expires=float(claims["exp"]),
            act=act if isinstance(act, Mapping) else None,
            may_act=may_act if isinstance(may_act, Mapping) else None,
            parent_jti=record.jti,
            agent_proof=agent_proof if isinstance(agent_proof, Mapping) else None,
            user_token=act is not None,
            audiences=record.audience,
            user_issuer=_user_issuer(claims),
        )

    def _verify_own(self, token: str, *, allow_expired: bool = False
                    ) -> tuple[IssuedToken | None, Mapping[str, Any]]:
        """An access token of this AS (``typ`` ``at+jwt``, its keys), its record if it is
        active (known, unrevoked, unexpired)."""
        try:
            verified = verify_jwt(token, self._own, now=self._clock.timestamp(),
                                  leeway=0 if not allow_expired else float("inf"),
                                  required=("exp", "jti", "iss", "sub"), typ=(AT_JWT_TYP,))
        except JwtInvalid:
            return None, {}
        claims = verified.claims
        if claims.get("iss") != self.issuer:
            return None, {}
        record = self._tokens.get(str(claims["jti"]))
        if record is None or record.subject != claims.get("sub"):
            return None, claims
        if record.revoked_at is not None:
            return None, claims
        if not allow_expired and record.expires_at <= self._clock.now():
            return None, claims
        if not allow_expired and not self._parties_active(claims):
            return None, claims
        return record, claims

    def _parties_active(self, claims: Mapping[str, Any]) -> bool:
        """Lifecycle reaches issued tokens: the user must still be active (when the
        directory knows them; always for an issuer that requires directory users, like the
        demo issuer) and the current actor's agent must still hold identities. Revocation
        does not ask (it must reach tokens of deactivated parties too)."""
        act = claims.get("act")
        sub = str(claims.get("sub"))
        actor = str(act.get("sub")) if isinstance(act, Mapping) else None
        agent_principal = actor is None and _agent_of(sub) is not None
        if not agent_principal:
            known = self._users.user_active(sub)
            issuer = self._issuer_for(_user_issuer(claims))
            if known is False or (known is None and issuer is not None
                                  and issuer.require_directory_user):
                return False
        holder = actor if actor is not None else (sub if agent_principal else None)
        if holder is None:
            return True
        name = _agent_of(holder)
        facts = self._agents.agent(name) if name is not None else None
        return facts is not None and facts.issues_identities

    def _actor(self, actor_token: str | None, actor_type: str | None,
               client: Client) -> SpiffeId:
        """The agent instance acting: the JWT-SVID ``actor_token`` (``aud`` the AS), or,
        without one, the SPIFFE client itself."""
        if actor_token is None:
            if client.spiffe_id is None:
                raise InvalidRequest("actor_token is required: the agent instance's JWT-SVID")
            return client.spiffe_id
        if actor_type not in (TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS):
            raise InvalidRequest(f"actor_token_type {actor_type!r} is not supported; send a "
                                 f"JWT-SVID as {TOKEN_TYPE_JWT}")
        try:
            svid = verify_jwt_svid(actor_token, self._bundle(), self.issuer,
                                   now=self._clock.timestamp(), leeway=_LEEWAY)
        except JwtSvidError as exc:
            raise InvalidRequest(f"actor_token is not a valid JWT-SVID for this AS: {exc}"
                                 ) from None
        if svid.audience != (self.issuer,):
            raise InvalidRequest("the actor_token must have the AS issuer as its only "
                                 "audience")
        if client.spiffe_id is not None and svid.spiffe_id != client.spiffe_id:
            raise InvalidRequest("the actor_token's SPIFFE ID is not the authenticated client")
        return svid.spiffe_id

    def _agent_facts(self, name: str) -> AgentFacts:
        facts = self._agents.agent(name)
        if facts is None:
            raise InvalidGrant(f"agent {name!r} is not registered")
        if not facts.issues_identities:
            raise InvalidGrant(f"agent {name} is {facts.state}: it holds no identities now")
        return facts

    def _check_checksum_pending(self, facts: AgentFacts) -> None:
        if facts.checksum_pending:
            raise InvalidGrant(f"agent {facts.name}: its checksum changed and waits for "
                               "recertification; recertification required")

    def _acting_agent(self, actor: SpiffeId, subject: _Subject) -> AgentFacts:
        """The agent rules: a registered agent of this trust domain that holds identities
        now, acting for users (not agent-as-principal), no checksum change pending, and the
        subject token's checksum (of the previous actor) still the approved one."""
        name = agent_name_of(actor)
        if name is None or actor.trust_domain != self._bundle().trust_domain:
            raise InvalidGrant(f"{actor} is not an agent instance of this trust domain")
        facts = self._agent_facts(name)
        if facts.delegation == "agent_as_principal" and subject.user_token:
            raise InvalidGrant(f"agent {name} is agent-as-principal and may not take user "
                               "tokens")
        self._check_checksum_pending(facts)
        proof = subject.agent_proof
        if proof is not None:
            previous = self._agent_facts(str(proof.get("agent_id", "")))
            self._check_checksum_pending(previous)
            claimed = str(proof.get("agent_checksum", ""))
            if not hmac.compare_digest(claimed, _checksum_claim(previous.checksum)):
                raise InvalidGrant(f"agent {previous.name}: the subject token's checksum is "
                                   "not its approved checksum; recertification required")
        return facts

    def _check_may_act(self, subject: _Subject, actor: str, what: str) -> None:
        """RFC 8693 §4.4 in every grant that takes a user subject: a ``may_act`` of the
        subject names who may become the actor; anyone else is ``invalid_grant``."""
        if subject.may_act is not None and not self._may_act(subject.may_act, actor):
            raise InvalidGrant(f"the {what}'s may_act does not allow {actor} to act")

    @staticmethod
    def _may_act(may_act: Mapping[str, Any], actor: str) -> bool:
        """``may_act.sub`` names the instance (or client), or the agent
        (``spiffe://td/agent/<name>``) whose every instance may act."""
        allowed = may_act.get("sub")
        if not isinstance(allowed, str):
            return False
        if allowed == actor:
            return True
        try:
            spiffe_id = SpiffeId.parse(actor)
        except SpiffeIdError:
            return False
        name = agent_name_of(spiffe_id)
        return name is not None and allowed == f"spiffe://{spiffe_id.trust_domain}/agent/{name}"

    def _user_assertion(self, assertion: str, *, client: Client) -> _Subject:
        """An ID-JAG as JWT bearer assertion (``invalid_grant`` when it fails, RFC 7523
        §3.1)."""
        try:
            _header, unverified = unverified_claims(assertion)
        except JwtInvalid as exc:
            raise InvalidGrant(f"assertion: {exc}") from None
        issuer = self._issuer_for(unverified.get("iss"))
        if issuer is None:
            raise InvalidGrant("assertion: its issuer is not trusted")
        try:
            verified = verify_jwt(assertion, issuer.resolve, now=self._clock.timestamp(),
                                  leeway=_LEEWAY, typ=(ID_JAG_TYP,),
                                  required=("exp", "sub", "iss", "aud", "jti", "iat",
                                            "client_id"))
        except JwtInvalid as exc:
            raise InvalidGrant(f"assertion: {exc}") from None
        claims = verified.claims
        aud = claims.get("aud")
        if not (aud == self.issuer or aud == [self.issuer]):
            raise InvalidGrant("an ID-JAG's aud must be exactly the AS issuer")
        if claims.get("client_id") != client.client_id:
            raise InvalidGrant("the ID-JAG's client_id is not the authenticated client")
        return self._user_subject(claims, issuer)

    # --- issuing ----------------------------------------------------------------------------

    def _resources(self, form: Mapping[str, Sequence[str]], subject: _Subject) -> list[str]:
        """RFC 8707 ``resource`` (absolute URI, no fragment) and RFC 8693 ``audience``;
        an ID-JAG's ``resource`` claim bounds and defaults them."""
        resources = [r for r in form.get("resource") or () if r]
        audiences = [a for a in form.get("audience") or () if a]
        if not resources and not audiences:
            resources = list(subject.resources)
        if not resources and not audiences:
            raise InvalidTarget("a resource (RFC 8707) or audience is required")
        for value in resources:
            try:
                parts = urlsplit(value)
            except ValueError:
                raise InvalidTarget(f"resource {value[:200]!r} is not a valid URI") from None
            if not parts.scheme or not (parts.netloc or parts.path) or parts.fragment \
                    or "#" in value or len(value) > 2048:
                raise InvalidTarget(f"resource {value[:200]!r} must be an absolute URI "
                                    "without a fragment")
        for value in audiences:
            if len(value) > 2048 or any(c.isspace() for c in value):
                raise InvalidTarget(f"audience {value[:200]!r} is not a valid name")
        targets = list(dict.fromkeys([*resources, *audiences]))
        if subject.resources and any(t not in subject.resources for t in targets):
            raise InvalidTarget("the requested resource is outside the assertion's resource")
        if self._allowed_resources and any(
                not self._is_local_agent(t)
                and not any(t == a or t.startswith(a.rstrip("/") + "/")
                            for a in self._allowed_resources) for t in targets):
            raise InvalidTarget("the requested resource is not served by this AS")
        if len(targets) > 16:
            raise InvalidTarget("at most 16 resources per token")
        return targets

    def _is_local_agent(self, target: str) -> bool:
        """An agent (``spiffe://td/agent/<name>``) or agent instance of this trust domain: a
        sub-agent to delegate to, always a valid resource."""
        if not target.startswith("spiffe://"):
            return False
        try:
            spiffe_id = SpiffeId.parse(target)
        except SpiffeIdError:
            return False
        if spiffe_id.trust_domain != self._bundle().trust_domain:
            return False
        s = spiffe_id.segments
        return (len(s) == 2 and s[0] == "agent") or agent_name_of(spiffe_id) is not None

    def _scope(self, form: Mapping[str, Sequence[str]], subject: _Subject,
               client: Client) -> Scope:
        """Requested (default: the subject's), never wider than the subject token's nor
        the client's registered scope."""
        try:
            text = _form_value(form, "scope")
            requested = Scope.parse(text) if text is not None else Scope.unrestricted()
            granted = subject.scope.narrow(requested)
            registered = client.registered.scope if client.registered is not None else None
            if registered is not None:
                client_scope = Scope.parse(registered)
                granted = (client_scope.narrow(granted) if requested.restricted
                           else granted.intersect(client_scope))
        except ScopeError as exc:
            raise InvalidScope(str(exc)) from None
        return granted

    def _issue(self, form: Mapping[str, Sequence[str]], client: Client, subject: _Subject, *,
               act: dict[str, Any] | None, agent: AgentFacts | None) -> dict[str, Any]:
        targets = self._resources(form, subject)
        scope = self._scope(form, subject, client)
        now = self._clock.timestamp()
        issued_at = int(now)
        expires = issued_at + max(1, int(self._ttl.total_seconds()))
        if subject.expires < expires:
            expires = int(subject.expires)
        if expires <= issued_at:
            raise InvalidGrant("the subject token expires too soon to delegate")
        jti = secrets.token_urlsafe(18)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject.subject,
            "aud": targets[0] if len(targets) == 1 else targets,
            "client_id": client.client_id,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": expires,
            "jti": jti,
        }
        if scope.claim() is not None:
            claims["scope"] = scope.claim()
        if act is not None:
            claims["act"] = act
        if subject.user_issuer is not None:
            # RFC 9493 §4: who vouched for the user, so that the lifecycle check of every
            # later use knows whether the directory must know the user
            claims["sub_id"] = {"format": "iss_sub", "iss": subject.user_issuer,
                                "sub": subject.subject}
        checksum = None
        if agent is not None:
            checksum = _checksum_claim(agent.checksum)
            claims["agent_proof"] = {"agent_id": agent.name, "agent_checksum": checksum}
        if client.certificate_thumbprint is not None:
            claims["cnf"] = {"x5t#S256": client.certificate_thumbprint}
        key = self._keys.active
        token = pyjwt.encode(claims, key.private_key, algorithm=key.algorithm,
                             headers={"kid": key.kid, "typ": AT_JWT_TYP})
        self._record_grant(form, client, subject, claims, agent)
        self._tokens.add(IssuedToken(
            jti=jti, subject=subject.subject, client_id=client.client_id,
            audience=tuple(targets), scope=scope.claim(), act=act, checksum=checksum,
            parent_jti=subject.parent_jti,
            issued_at=datetime.fromtimestamp(issued_at, UTC),
            expires_at=datetime.fromtimestamp(expires, UTC),
        ))
        body: dict[str, Any] = {
            "access_token": token,
            "issued_token_type": TOKEN_TYPE_ACCESS,
            "token_type": "Bearer",
            "expires_in": expires - issued_at,
        }
        if scope.claim() is not None:
            body["scope"] = scope.claim()
        return body

    def _record_grant(self, form: Mapping[str, Sequence[str]], client: Client,
                      subject: _Subject, claims: Mapping[str, Any],
                      agent: AgentFacts | None) -> None:
        """Write the grant to the audit log before the token exists anywhere: a grant the log
        cannot take is refused (fail closed). Never the token itself, only its ``jti``."""
        if self._audit is None:
            return
        act = claims.get("act")
        chain = _chain(act)
        grant = _form_value(form, "grant_type") or ""
        details: dict[str, Any] = {"jti": claims["jti"], "client_id": client.client_id,
                                   "grant_type": grant, "exp": claims["exp"]}
        if "scope" in claims:
            details["scope"] = claims["scope"]
        if subject.parent_jti is not None:
            details["parent_jti"] = subject.parent_jti
        if agent is not None:
            details["agent_checksum"] = claims["agent_proof"]["agent_checksum"]
        audience = claims["aud"]
        event = AuditEvent(
            kind=AuditKind.TOKEN_GRANT, actor=client.client_id,
            who=Who(agent=agent.name if agent is not None else None,
                    instance=chain[-1] if chain else None, user=subject.subject,
                    chain=chain),
            what=What(operation=grant.rsplit(":", 1)[-1] or "token",
                      target=audience if isinstance(audience, str) else " ".join(audience)),
            details=details)
        try:
            self._audit.append(event)
        except AuditUnavailableError as exc:
            raise TemporarilyUnavailable(
                f"the grant was not made because the audit log cannot record it: {exc}"
            ) from None

    # --- verification for resource servers (the gateway) -----------------------------------

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The claims of an active access token of this AS: signature with its keys, ``typ``
        ``at+jwt``, issuer, expiry and the token record (known, unrevoked). Anything else is
        :class:`InvalidToken`. Used by resource servers in the same process (the gateway).

        A token that passed is served from :attr:`verified` (:mod:`tabard.oauth.verified`)
        until its expiry or the cache's freshness window, whichever comes first; every check
        of :meth:`_verify_own` (record, revocation, user and agent lifecycle) runs again
        after that, and at once after :meth:`forget_verified`."""
        cache = self.verified
        if not cache.enabled:
            return dict(self._checked_own(token)[1])
        now = self._clock.timestamp()
        key = cache.key(token)
        hit = cache.get(key, now)
        if hit is not None:
            return dict(hit)
        generation = cache.generation
        record, claims = self._checked_own(token)
        cache.put(key, claims, now=now, generation=generation,
                  expires=min(record.expires_at.timestamp(), float(claims["exp"])))
        return dict(claims)

    def _checked_own(self, token: str) -> tuple[IssuedToken, Mapping[str, Any]]:
        record, claims = self._verify_own(token)
        if record is None:
            raise InvalidToken("the access token is not active (invalid, expired, revoked "
                               "or not issued by this authorization server)")
        return record, claims

    def forget_verified(self) -> None:
        """Drop every cached verification now: a token was revoked, or an agent's or a
        user's lifecycle changed (the composition root calls this on those events)."""
        self.verified.clear()

    def verify_user_token(self, token: str, audiences: Sequence[str]) -> dict[str, Any]:
        """The claims of a user's own token from a trusted issuer (the demo issuer under
        ``tabard dev``, or ``[[oauth.trusted_issuers]]``) whose ``aud`` holds one of
        ``audiences`` and whose user is active (dual-token mode at the gateway);
        :class:`InvalidToken` otherwise. Served from :attr:`verified` like
        :meth:`verify_access_token` (keyed by the token and ``audiences``)."""
        cache = self.verified
        if not cache.enabled:
            return self._checked_user_token(token, audiences)
        now = self._clock.timestamp()
        key = cache.key(token, *sorted(audiences))
        hit = cache.get(key, now)
        if hit is not None:
            return dict(hit)
        generation = cache.generation
        claims = self._checked_user_token(token, audiences)
        cache.put(key, claims, now=now, generation=generation,
                  expires=float(claims["exp"]) + _LEEWAY)
        return dict(claims)

    def _checked_user_token(self, token: str, audiences: Sequence[str]) -> dict[str, Any]:
        try:
            _header, unverified = unverified_claims(token)
        except JwtInvalid as exc:
            raise InvalidToken(f"the user token is malformed: {exc}") from None
        issuer = self._issuer_for(unverified.get("iss"))
        if issuer is None:
            raise InvalidToken("the user token's issuer is not trusted")
        try:
            verified = verify_jwt(token, issuer.resolve, now=self._clock.timestamp(),
                                  leeway=_LEEWAY, required=("exp", "sub", "iss"))
        except JwtInvalid as exc:
            raise InvalidToken(f"the user token is not valid: {exc}") from None
        if not set(audiences_of(verified.claims)) & set(audiences):
            raise InvalidToken("the user token is bound to another audience")
        try:
            self._user_subject(verified.claims, issuer)
        except (InvalidRequest, InvalidGrant) as exc:
            raise InvalidToken(str(exc)) from None
        return dict(verified.claims)

    def sign_downstream(self, claims: Mapping[str, Any]) -> str:
        """A downstream JWT (the vault's just-in-time provider) under the AS key, verifiable
        with the AS JWKS. Its ``typ`` is ``JWT``, never ``at+jwt``, so it cannot pass as an
        access token of this AS (which accepts only ``at+jwt``)."""
        key = self._keys.active
        return pyjwt.encode(dict(claims), key.private_key, algorithm=key.algorithm,
                            headers={"kid": key.kid, "typ": "JWT"})

    # --- introspection and revocation -------------------------------------------------------

    def introspect(self, token: str | None) -> dict[str, Any]:
        """RFC 7662 §2.2; ``{"active": false}`` alone for anything not active."""
        if not token:
            raise InvalidRequest("parameter 'token' is required")
        record, claims = self._verify_own(token)
        if record is None:
            return {"active": False}
        out: dict[str, Any] = {
            "active": True,
            "iss": self.issuer,
            "sub": record.subject,
            "aud": list(record.audience) if len(record.audience) > 1 else record.audience[0],
            "client_id": record.client_id,
            "token_type": "Bearer",
            "exp": int(record.expires_at.timestamp()),
            "iat": int(record.issued_at.timestamp()),
            "jti": record.jti,
        }
        if record.scope is not None:
            out["scope"] = record.scope
        if record.act is not None:
            out["act"] = dict(record.act)
        for name in ("cnf", "agent_proof"):
            if name in claims:
                out[name] = claims[name]
        return out

    def revoke(self, token: str | None, client: Client | None) -> int:
        """RFC 7009 §2.1: revoke the token and every token exchanged from it. ``client``
        None is an admin; a client may revoke only tokens issued to it. Unknown or invalid
        tokens are ignored (the response is 200 either way)."""
        if not token:
            raise InvalidRequest("parameter 'token' is required")
        record, _claims = self._verify_own(token, allow_expired=True)
        if record is None:
            return 0
        if client is not None and record.client_id != client.client_id:
            raise UnauthorizedClient("the token was not issued to this client")
        revoked = self._tokens.revoke_tree(record.jti, self._clock.now())
        self.forget_verified()  # the tree's tokens are unknown here by value: drop them all
        if self._audit is not None:
            # A revocation takes effect even when the log cannot record it: refusing it would
            # keep a token alive that someone wanted dead. The failure is logged instead.
            try:
                self._audit.append(AuditEvent(
                    kind=AuditKind.TOKEN_GRANT,
                    actor=client.client_id if client is not None else "admin",
                    who=Who(user=record.subject, chain=_chain(record.act)),
                    what=What(operation="revoke", target=record.jti),
                    details={"revoked": revoked}))
            except AuditUnavailableError:
                log.warning("token %s revoked, but the audit log could not record it",
                            record.jti)
        return revoked

    # --- registration (RFC 7591) ------------------------------------------------------------

    def register(self, metadata: Mapping[str, Any], *, admin: bool) -> dict[str, Any]:
        """A ``software_statement`` that is the agent's JWT-SVID (``aud`` the AS) registers
        that SPIFFE ID; an admin (initial access token) registers ``private_key_jwt``
        clients with their ``jwks``."""
        statement = metadata.get("software_statement")
        grant_types = metadata.get("grant_types") or [GRANT_TOKEN_EXCHANGE]
        if not isinstance(grant_types, list) or not all(
                g in (GRANT_TOKEN_EXCHANGE, GRANT_JWT_BEARER, GRANT_CLIENT_CREDENTIALS)
                for g in grant_types):
            raise InvalidClientMetadata("grant_types may hold token-exchange, jwt-bearer and "
                                        "client_credentials only")
        scope = metadata.get("scope")
        if scope is not None:
            try:
                Scope.parse(scope)
            except ScopeError as exc:
                raise InvalidClientMetadata(f"scope: {exc}") from None
        name = metadata.get("client_name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise InvalidClientMetadata("client_name must be a string of at most 200 "
                                        "characters")
        extra = {k: metadata[k] for k in ("software_id", "software_version")
                 if isinstance(metadata.get(k), str)}
        now = self._clock.now()
        if statement is not None:
            if not isinstance(statement, str):
                raise InvalidSoftwareStatement("software_statement must be a JWT")
            try:
                svid = verify_jwt_svid(statement, self._bundle(), self.issuer,
                                       now=self._clock.timestamp(), leeway=_LEEWAY)
            except JwtSvidError as exc:
                raise InvalidSoftwareStatement(f"the software statement is not a valid "
                                               f"JWT-SVID for this AS: {exc}") from None
            existing = self._clients.get(str(svid.spiffe_id))
            if existing is not None:
                self._check_narrowing(existing, grant_types, scope)
            client = OAuthClient(
                client_id=str(svid.spiffe_id), client_name=name or str(svid.spiffe_id),
                auth_method="spiffe", grant_types=tuple(grant_types), scope=scope, jwks=None,
                created_at=existing.created_at if existing is not None else now,
                software_id=extra.get("software_id"),
                software_version=extra.get("software_version"))
            self._clients.put(client)
            # RFC 7591 §3.2.1 returns the method; RFC 8705 §2.1.2 names the certificate's
            # SAN URI for tls_client_auth. JWT-SVID client assertions (jwt-spiffe) are
            # accepted for the same client too.
            return self._client_view(client, software_statement=statement,
                                     token_endpoint_auth_method="tls_client_auth",
                                     tls_client_auth_san_uri=client.client_id)
        if not admin:
            raise InvalidToken("registration needs a software statement (the agent's "
                               "JWT-SVID) or an admin token as initial access token")
        if metadata.get("token_endpoint_auth_method", "private_key_jwt") != "private_key_jwt":
            raise InvalidClientMetadata("only private_key_jwt clients can be registered")
        jwks = metadata.get("jwks")
        if metadata.get("jwks_uri") is not None:
            raise InvalidClientMetadata("give the client's keys inline as jwks")
        if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list) \
                or not jwks["keys"]:
            raise InvalidClientMetadata("jwks with at least one public key is required")
        for jwk in jwks["keys"]:
            if not isinstance(jwk, Mapping):
                raise InvalidClientMetadata("jwks: every key must be a JSON object (a JWK)")
            alg = jwk.get("alg")
            if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
                raise InvalidClientMetadata(f"jwks: alg {str(alg)[:40]!r} is not an allowed "
                                            "asymmetric signing algorithm")
            try:
                parsed = pyjwt.PyJWK(dict(jwk))
            except (pyjwt.PyJWKError, pyjwt.InvalidKeyError, TypeError, ValueError,
                    NotImplementedError) as exc:
                raise InvalidClientMetadata(f"jwks: {exc or 'the key cannot be used'}"
                                            ) from None
            if not hasattr(parsed.key, "public_bytes") or hasattr(parsed.key, "private_bytes"):
                raise InvalidClientMetadata("jwks must hold public asymmetric keys")
        if GRANT_CLIENT_CREDENTIALS in grant_types:
            raise InvalidClientMetadata("client_credentials is only for agent-as-principal "
                                        "agents")
        client = OAuthClient(
            client_id="tc_" + secrets.token_urlsafe(12), client_name=name or "unnamed client",
            auth_method="private_key_jwt", grant_types=tuple(grant_types), scope=scope,
            jwks=dict(jwks), created_at=now, software_id=extra.get("software_id"),
            software_version=extra.get("software_version"))
        self._clients.put(client)
        return self._client_view(client, token_endpoint_auth_method="private_key_jwt",
                                 jwks=dict(jwks))

    @staticmethod
    def _check_narrowing(existing: OAuthClient, grant_types: Sequence[str],
                         scope: str | None) -> None:
        """A client registers again only to narrow itself (grant types a subset, scope
        inside the registered one); anything else could widen what it was given, so an
        admin deletes it first (``tabard oauth clients delete``)."""
        refusal = InvalidClientMetadata(
            f"client {existing.client_id!r} is already registered; registering again may "
            "only narrow its grant types and scope (an admin may delete it first)")
        if existing.auth_method != "spiffe" or not set(grant_types) <= set(
                existing.grant_types):
            raise refusal
        if not Scope.parse(existing.scope).covers(Scope.parse(scope)):
            raise refusal

    def _client_view(self, client: OAuthClient, **extra: Any) -> dict[str, Any]:
        view: dict[str, Any] = {
            "client_id": client.client_id,
            "client_id_issued_at": int(client.created_at.timestamp()),
            "client_name": client.client_name,
            "grant_types": list(client.grant_types),
            **extra,
        }
        if client.scope is not None:
            view["scope"] = client.scope
        if client.software_id:
            view["software_id"] = client.software_id
        if client.software_version:
            view["software_version"] = client.software_version
        return view

    def clients(self) -> list[OAuthClient]:
        return self._clients.list()

    def delete_client(self, client_id: str) -> bool:
        return self._clients.delete(client_id)


def _jwks_resolver(jwks: Mapping[str, Any]) -> KeyResolver:
    keys: dict[str | None, tuple[Any, str]] = {}
    for jwk in jwks.get("keys", []):
        if not isinstance(jwk, Mapping):
            continue
        try:
            parsed = pyjwt.PyJWK(dict(jwk))
        except (pyjwt.PyJWKError, pyjwt.InvalidKeyError, TypeError, ValueError,
                NotImplementedError):
            continue
        keys[jwk.get("kid")] = (parsed.key, str(parsed.algorithm_name))

    def resolve(header: Mapping[str, Any], _claims: Mapping[str, Any]) -> tuple[Any, str] | None:
        kid = header.get("kid")
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        return keys.get(kid if isinstance(kid, str) else None)

    return resolve


class DownstreamJwtSigner:
    """The vault's ``DownstreamSigner`` port over an authorization server: downstream JWTs
    (``aud`` = the upstream) signed with the AS key, verifiable with the AS JWKS."""

    def __init__(self, server: AuthorizationServer) -> None:
        self._server = server

    @property
    def issuer(self) -> str:
        return self._server.issuer

    def sign(self, claims: Mapping[str, Any]) -> str:
        return self._server.sign_downstream(claims)
