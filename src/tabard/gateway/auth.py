"""Who is calling: the agent instance (X509-SVID over mTLS or a JWT-SVID in
``Tabard-Agent-Token``) and the user it acts for (``Authorization: Bearer``).

The user token is either a delegated access token of tabard's authorization server — its
top-level ``act.sub`` must be the authenticated instance, its ``cnf`` (RFC 8705) must match
the client certificate when present, and its ``aud`` must name this route — or, in
dual-token mode, the user's own token from an issuer the authorization server trusts, also
audience-bound to this route. Dual-token mode is opt-in per route (its
``user_token_issuers``, none by default) and, when the user's token carries an RFC 8693
``may_act`` claim, that claim must name the calling instance or its agent. Any other token
is refused: nothing is passed through.

Agents' JWT-SVIDs go through one bounded verified-token cache per process
(:class:`tabard.spiffe.JwtSvidCache`, keyed by the token's SHA-256): a hit re-checks the
expiry, the audience and that the bundle served now still holds the signing key, so a
retired key ends its tokens at once. Client certificate chains likewise
(:class:`tabard.spiffe.X509SvidCache`): a hit needs the same bundle authorities and a time
inside every certificate's validity. The user token's cache is the authorization
server's (:meth:`tabard.oauth.AuthorizationServer.verify_access_token`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tabard.errors import Unauthenticated
from tabard.gateway.errors import AgentUnauthenticatedError, UserTokenError
from tabard.gateway.ports import TokenVerifier
from tabard.oauth.jwts import JwtInvalid, unverified_claims
from tabard.policy import Hop, Scope, ScopeError, agent_of_instance
from tabard.spiffe import Bundle, JwtSvidCache, JwtSvidError, X509SvidCache, X509SvidError

__all__ = ["AGENT_TOKEN_HEADER", "AgentIdentity", "Caller", "authenticate_agent",
           "check_dual_token", "establish_user"]

AGENT_TOKEN_HEADER = "tabard-agent-token"
_LEEWAY = 30.0
AGENT_TOKEN_CACHE = JwtSvidCache(size=10_000)
"""The process's verified agent JWT-SVIDs (module docstring)."""
AGENT_CERT_CACHE = X509SvidCache(size=10_000)
"""The process's verified agent X509-SVID chains (module docstring)."""


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    spiffe_id: str
    agent: str
    method: str  # "x509-svid" | "jwt-svid"
    thumbprint: str | None = None  # x5t#S256 of the client certificate (mTLS)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated parties of one request. ``chain`` is the delegation, nearest the
    user first, the calling instance last; ``hops`` the same as decision hops (current
    actor first) with the delegated scope on the current hop."""

    agent: AgentIdentity
    user: str | None
    chain: tuple[str, ...]
    hops: tuple[Hop, ...]
    scope: Scope
    token_kind: str  # "delegated" | "user" | "none"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def authenticate_agent(*, tls_chain: Sequence[bytes], agent_token: str | None,
                       bundle: Callable[[], Bundle], audience: str, now: float,
                       svids: JwtSvidCache = AGENT_TOKEN_CACHE,
                       certs: X509SvidCache = AGENT_CERT_CACHE) -> AgentIdentity:
    """The agent instance behind a request; :class:`AgentUnauthenticatedError` otherwise.
    JWT-SVIDs are verified through ``svids``, client certificates through ``certs``
    (module docstring)."""
    thumbprint = None
    if tls_chain:
        try:
            spiffe_id = str(certs.verify(tls_chain, bundle(),
                                         at=datetime.fromtimestamp(now, UTC)))
        except (ValueError, X509SvidError) as exc:
            raise AgentUnauthenticatedError(
                f"the client certificate is not a valid X509-SVID: {exc}") from None
        method, thumbprint = "x509-svid", _b64(hashlib.sha256(tls_chain[0]).digest())
    elif agent_token:
        try:
            svid = svids.verify(agent_token, bundle(), audience, now=now, leeway=_LEEWAY)
        except JwtSvidError as exc:
            raise AgentUnauthenticatedError(
                f"the Tabard-Agent-Token is not a valid JWT-SVID for audience {audience}: "
                f"{exc}") from None
        spiffe_id, method = str(svid.spiffe_id), "jwt-svid"
    else:
        raise AgentUnauthenticatedError(
            "the agent must authenticate: an X509-SVID over mTLS or a JWT-SVID in the "
            "Tabard-Agent-Token header")
    found = agent_of_instance(spiffe_id)
    if found is None:
        raise AgentUnauthenticatedError(
            f"{spiffe_id} is not an agent instance (spiffe://<td>/agent/<name>/instance/<id>)")
    return AgentIdentity(spiffe_id, found[1], method, thumbprint)


def _act_chain(act: object) -> list[str]:
    """Actors of an ``act`` claim, current (outermost) first."""
    out: list[str] = []
    while isinstance(act, Mapping) and isinstance(act.get("sub"), str) and len(out) < 32:
        out.append(act["sub"])
        act = act.get("act")
    return out


def _scope(claims: Mapping[str, Any]) -> Scope:
    value = claims.get("scope")
    if value is None:
        return Scope.unrestricted()
    try:
        return Scope.parse(str(value))
    except ScopeError as exc:
        raise UserTokenError(f"the token's scope is malformed: {exc}") from None


def _audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list):
        return tuple(a for a in aud if isinstance(a, str))
    return ()


# The unverified ``iss`` of bearer tokens by SHA-256: a pure function of the token, memoised
# because decoding the payload (base64 + JSON) costs tens of µs per request; emptied when full.
_ISSUERS: dict[bytes, object] = {}
_ISSUERS_SIZE = 4096


def _issuer_of(token: str) -> object:
    """The unverified ``iss`` of a compact JWT; None when it does not parse (the caller then
    asks for the parser's error). It only picks the verifier, which checks everything."""
    key = hashlib.sha256(token.encode()).digest()
    found = _ISSUERS.get(key, _ISSUERS)
    if found is not _ISSUERS:
        return found
    try:
        issuer = unverified_claims(token)[1].get("iss")
    except JwtInvalid:
        return None
    if issuer is not None:
        if len(_ISSUERS) >= _ISSUERS_SIZE:
            _ISSUERS.clear()
        _ISSUERS[key] = issuer
    return issuer


def check_dual_token(claims: Mapping[str, Any], agent: AgentIdentity,
                     user_issuers: Collection[str], *, verified: bool) -> None:
    """Dual-token mode on a route: before verification (``verified`` false), the token's
    issuer must be one the route accepts users' own tokens from; after, an RFC 8693
    ``may_act`` claim, when present, must be an object whose ``sub`` names the instance or
    its agent (``spiffe://<td>/agent/<name>``: any of its instances), as the authorization
    server reads it in a token exchange."""
    if not verified:
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or issuer not in user_issuers:
            raise UserTokenError(
                "this route accepts no user token from this issuer (dual-token mode is "
                "off unless the route names the issuer in user_token_issuers); exchange it "
                "at tabard's authorization server for a delegated access token")
        return
    if "may_act" not in claims:
        return
    may_act = claims["may_act"]
    named = may_act.get("sub") if isinstance(may_act, Mapping) else None
    if named not in (agent.spiffe_id, agent.spiffe_id.split("/instance/", 1)[0]):
        raise UserTokenError("the user token's may_act does not name this agent")


def establish_user(authorization: str | None, agent: AgentIdentity, *,
                   verifier: TokenVerifier | None, audience: str,
                   user_issuers: Collection[str] = ()) -> Caller:
    """The user context of ``Authorization`` (module docstring); none: agent-as-principal
    (the decision then allows it only for agents whose delegation mode says so)."""
    if not authorization:
        return Caller(agent, None, (agent.spiffe_id,), (Hop(agent.spiffe_id),),
                      Scope.unrestricted(), "none")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UserTokenError("Authorization must be 'Bearer <access token>'")
    if verifier is None:
        raise UserTokenError("this gateway accepts no user tokens")
    issuer = _issuer_of(token)
    if issuer is None:
        try:
            _header, unverified = unverified_claims(token)
        except JwtInvalid:
            raise UserTokenError("the bearer token is not a JWT") from None
        issuer = unverified.get("iss")
    try:
        if issuer == verifier.issuer:
            claims = verifier.verify_access_token(token)
            kind = "delegated"
        else:
            check_dual_token({"iss": issuer}, agent, user_issuers, verified=False)
            claims = verifier.verify_user_token(token, [audience])
            check_dual_token(claims, agent, user_issuers, verified=True)
            kind = "user"
    except Unauthenticated as exc:
        raise UserTokenError(str(exc)) from None
    if audience not in _audiences(claims):
        raise UserTokenError(f"the token is bound to another resource, not {audience}")
    user = claims.get("sub")
    if not isinstance(user, str) or not user:
        raise UserTokenError("the token names no user")
    scope = _scope(claims)
    if kind == "user":
        return Caller(agent, user, (user, agent.spiffe_id), (Hop(agent.spiffe_id, scope),),
                      scope, kind)
    actors = _act_chain(claims.get("act"))
    if not actors:
        raise UserTokenError("the access token has no act claim: it delegates to no agent")
    if actors[0] != agent.spiffe_id:
        raise UserTokenError("the access token was delegated to another agent instance")
    cnf = claims.get("cnf")
    if isinstance(cnf, Mapping) and "x5t#S256" in cnf and (
            agent.thumbprint is None or cnf["x5t#S256"] != agent.thumbprint):
        raise UserTokenError("the access token is bound to a client certificate this "
                             "request did not present")
    hops = (Hop(actors[0], scope), *(Hop(a) for a in actors[1:]))
    return Caller(agent, user, (user, *reversed(actors)), hops, scope, kind)
