"""The authorization server in process: chains, scopes, agent rules, client authentication,
introspection, revocation, registration and the RFC error codes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.authority import MemoryKeyManager
from tabard.oauth import (
    ASSERTION_JWT_BEARER,
    ASSERTION_JWT_SPIFFE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_JWT_BEARER,
    GRANT_TOKEN_EXCHANGE,
    ID_JAG_TYP,
    AuthorizationServer,
    DemoIssuerDisabled,
    OAuthError,
    SigningKeys,
    public_jwk,
)
from tabard.spiffe import JwtSvidError, SpiffeId, verify_jwt_svid
from tests.unit.oauth.conftest import ISSUER, RESOURCE, World, agent_id, instance


def error_of(call: Any, *args: Any, **kwargs: Any) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_a_three_hop_chain_narrows_and_introspection_shows_it(world: World) -> None:
    user = world.user_token("alice", scope="tools:jira.* tools:github.* tools:scanner.run")
    # each agent delegates to the next by asking for a token whose resource is that agent
    one = world.exchange(user, instance("helper"), scope="tools:jira.* tools:github.*",
                         resource=agent_id("sub"))
    two = world.exchange(one["access_token"], instance("sub"), scope="tools:jira.*",
                         resource=agent_id("subsub"))
    assert world.claims(two["access_token"])["aud"] == agent_id("subsub")
    three = world.exchange(two["access_token"], instance("subsub"), scope="tools:jira.read")
    claims = world.claims(three["access_token"])
    assert jwt.get_unverified_header(three["access_token"])["typ"] == "at+jwt"
    assert claims["sub"] == "alice" and claims["aud"] == RESOURCE and claims["iss"] == ISSUER
    assert claims["scope"] == "tools:jira.read" and three["scope"] == "tools:jira.read"
    assert claims["act"] == {"sub": str(instance("subsub")),
                             "act": {"sub": str(instance("sub")),
                                     "act": {"sub": str(instance("helper"))}}}
    assert claims["client_id"] == str(instance("subsub"))
    assert claims["agent_proof"] == {"agent_id": "subsub", "agent_checksum": "sha256:" + "ab" * 32}
    assert claims["exp"] - claims["iat"] == 300 and three["expires_in"] == 300
    seen = world.server.introspect(three["access_token"])
    assert seen["active"] is True and seen["act"] == claims["act"]
    assert seen["sub"] == "alice" and seen["scope"] == "tools:jira.read"
    # an unrequested scope keeps the subject's: narrower or equal at every hop
    same = world.exchange(two["access_token"], instance("subsub"))
    assert world.claims(same["access_token"])["scope"] == "tools:jira.*"


def test_widening_at_any_hop_is_invalid_scope(world: World) -> None:
    user = world.user_token("alice", scope="tools:jira.*")
    error = error_of(world.exchange, user, instance("helper"), scope="tools:*")
    assert error.code == "invalid_scope" and error.status == 400
    one = world.exchange(user, instance("helper"), scope="tools:jira.read tools:jira.write",
                         resource=agent_id("sub"))
    error = error_of(world.exchange, one["access_token"], instance("sub"),
                     scope="tools:jira.*")
    assert error.code == "invalid_scope"


def test_the_depth_limit_holds(world: World) -> None:
    token = world.user_token("alice")
    for agent, next_agent in (("helper", "sub"), ("sub", "subsub"), ("subsub", "fourth")):
        token = world.exchange(token, instance(agent),
                               resource=agent_id(next_agent))["access_token"]
    error = error_of(world.exchange, token, instance("fourth"))
    assert error.code == "invalid_grant" and "depth" in error.message


def test_revoking_a_token_revokes_the_chain_below_it(world: World) -> None:
    one = world.exchange(world.user_token(), instance("helper"),
                         resource=[agent_id("sub"), agent_id("fourth")])["access_token"]
    two = world.exchange(one, instance("sub"), resource=agent_id("subsub"))["access_token"]
    three = world.exchange(two, instance("subsub"))["access_token"]
    sibling = world.exchange(one, instance("fourth"))["access_token"]
    assert world.server.revoke(two, None) == 2
    assert world.server.introspect(two) == {"active": False}
    assert world.server.introspect(three) == {"active": False}
    assert world.server.introspect(one)["active"] is True
    assert world.server.introspect(sibling)["active"] is True
    error = error_of(world.exchange, two, instance("subsub"))
    assert error.code == "invalid_request"
    assert world.server.revoke("not a token", None) == 0


def test_expired_and_unknown_tokens_are_inactive(world: World) -> None:
    token = world.exchange(world.user_token(), instance("helper"))["access_token"]
    world.clock.advance(timedelta(minutes=5))
    assert world.server.introspect(token) == {"active": False}
    assert world.server.introspect(world.svid(instance("helper"))) == {"active": False}
    forged = jwt.encode({"iss": ISSUER, "sub": "alice", "jti": "x", "exp": 9e9},
                        ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"typ": "at+jwt", "kid": "nope"})
    assert world.server.introspect(forged) == {"active": False}


def test_a_delegated_token_never_outlives_its_subject(world: World) -> None:
    user = world.server.mint_user_token("alice", ttl=timedelta(minutes=2))
    issued = world.exchange(user, instance("helper"))
    assert issued["expires_in"] == 120


def test_access_tokens_and_jwt_svids_never_verify_as_each_other(world: World) -> None:
    access = world.exchange(world.user_token(), instance("helper"))["access_token"]
    with pytest.raises(JwtSvidError):
        verify_jwt_svid(access, world.authority.bundle(), RESOURCE,
                        now=world.clock.timestamp())
    kids = {k["kid"] for k in world.server.jwks()["keys"]}
    assert jwt.get_unverified_header(access)["kid"] in kids
    assert not kids & {a.key_id for a in world.authority.bundle().jwt_authorities}


@pytest.mark.parametrize(("change", "code"), [
    ({"resource": None}, "invalid_target"),
    ({"resource": "not a uri"}, "invalid_target"),
    ({"resource": "https://x.example/a#frag"}, "invalid_target"),
    ({"resource": "http://["}, "invalid_target"),
    ({"subject_token_type": "urn:x"}, "invalid_request"),
    ({"subject_token": "garbage"}, "invalid_request"),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
     "invalid_request"),
    ({"grant_type": "password"}, "unsupported_grant_type"),
    ({"client_assertion_type": "urn:x"}, "invalid_client"),
])
def test_bad_requests_get_their_rfc_error_code(world: World, change: dict[str, Any],
                                               code: str) -> None:
    form: dict[str, list[str]] = {
        "grant_type": [GRANT_TOKEN_EXCHANGE],
        "subject_token": [world.user_token()],
        "subject_token_type": ["urn:ietf:params:oauth:token-type:jwt"],
        "client_assertion_type": [ASSERTION_JWT_SPIFFE],
        "client_assertion": [world.svid(instance("helper"))],
        "resource": [RESOURCE],
    }
    for key, value in change.items():
        if value is None:
            form.pop(key)
        else:
            form[key] = [value]
    assert error_of(world.server.token, form).code == code


def test_client_authentication_with_a_jwt_svid(world: World) -> None:
    user = world.user_token()
    wide = world.svid(instance("helper"), [ISSUER, "other"])
    form = {"grant_type": [GRANT_TOKEN_EXCHANGE], "subject_token": [user],
            "subject_token_type": ["urn:ietf:params:oauth:token-type:jwt"],
            "client_assertion_type": [ASSERTION_JWT_SPIFFE], "resource": [RESOURCE]}
    for assertion, client_id in ((wide, None), (world.svid(instance("helper"), "other"), None),
                                 (world.svid(instance("helper")), str(instance("sub")))):
        attempt = {**form, "client_assertion": [assertion]}
        if client_id:
            attempt["client_id"] = [client_id]
        error = error_of(world.server.token, attempt)
        assert error.code == "invalid_client" and error.status == 401
    # the actor token must be the authenticated client's
    error = error_of(world.server.token, {
        **form, "client_assertion": [world.svid(instance("helper"))],
        "actor_token": [world.svid(instance("sub"))],
        "actor_token_type": ["urn:ietf:params:oauth:token-type:jwt"]})
    assert error.code == "invalid_request"
    # without actor_token the SPIFFE client is the actor
    issued = world.exchange(user, instance("helper"), actor_token=False)
    assert world.claims(issued["access_token"])["act"] == {"sub": str(instance("helper"))}


def test_agent_rules_from_the_registry(world: World) -> None:
    user = world.user_token()
    world.agents.add("paused", state="suspended")
    world.agents.add("changing", checksum_pending=True)
    for agent, words in (("paused", "suspended"), ("changing", "recertification required"),
                         ("cron", "agent-as-principal"), ("ghost", "not registered")):
        error = error_of(world.exchange, user, instance(agent))
        assert error.code == "invalid_grant" and words in error.message, agent
    world.agents.add("pending", state="pending_recertification")
    assert world.exchange(user, instance("pending"))["access_token"]
    error = error_of(world.exchange, user, SpiffeId.parse("spiffe://example.org/service/web"))
    assert error.code == "invalid_client"


def test_a_changed_checksum_refuses_the_delegated_token(world: World) -> None:
    one = world.exchange(world.user_token(), instance("helper"),
                         resource=agent_id("sub"))["access_token"]
    world.agents.add("helper", checksum="cd" * 32)
    error = error_of(world.exchange, one, instance("sub"))
    assert error.code == "invalid_grant" and "recertification required" in error.message
    world.agents.add("helper", checksum="ab" * 32, checksum_pending=True)
    assert error_of(world.exchange, one, instance("sub")).code == "invalid_grant"
    world.agents.add("helper", checksum="ab" * 32)
    assert world.exchange(one, instance("sub"))["access_token"]


def test_users_must_be_active_and_may_act_is_honoured(world: World) -> None:
    with pytest.raises(Exception, match="not an active person"):
        world.server.mint_user_token("carol")
    inactive = world.idp_token({"sub": "carol", "aud": ISSUER})
    assert error_of(world.exchange, inactive, instance("helper")).code == "invalid_grant"
    unknown = world.idp_token({"sub": "dave@idp", "aud": ISSUER})
    assert world.exchange(unknown, instance("helper"))["access_token"]
    limited = world.idp_token({"sub": "alice", "aud": ISSUER,
                               "may_act": {"sub": "spiffe://example.org/agent/helper"}})
    assert world.exchange(limited, instance("helper", "7"))["access_token"]
    error = error_of(world.exchange, limited, instance("sub"))
    assert error.code == "invalid_grant" and "may_act" in error.message
    wrong_aud = world.idp_token({"sub": "alice", "aud": "https://elsewhere"})
    assert error_of(world.exchange, wrong_aud, instance("helper")).code == "invalid_request"


def test_client_credentials_only_for_agent_as_principal(world: World) -> None:
    def request(agent: str) -> dict[str, Any]:
        return world.server.token({
            "grant_type": [GRANT_CLIENT_CREDENTIALS], "resource": [RESOURCE],
            "scope": ["tools:backup.run"], "client_assertion_type": [ASSERTION_JWT_SPIFFE],
            "client_assertion": [world.svid(instance(agent))]})

    claims = world.claims(request("cron")["access_token"])
    assert claims["sub"] == str(instance("cron")) and "act" not in claims
    assert claims["scope"] == "tools:backup.run"
    assert error_of(request, "helper").code == "unauthorized_client"


def test_id_jag_and_jwt_bearer(world: World) -> None:
    client = str(instance("helper"))

    def bearer(assertion: str, **extra: str) -> dict[str, Any]:
        form = {"grant_type": [GRANT_JWT_BEARER], "assertion": [assertion],
                "client_assertion_type": [ASSERTION_JWT_SPIFFE],
                "client_assertion": [world.svid(instance("helper"))]}
        form.update({k: [v] for k, v in extra.items()})
        return world.server.token(form)

    jag = world.idp_token({"sub": "alice", "aud": ISSUER, "client_id": client,
                           "resource": RESOURCE, "scope": "files.read files.write"},
                          typ=ID_JAG_TYP)
    issued = bearer(jag, scope="files.read")
    claims = world.claims(issued["access_token"])
    assert claims["sub"] == "alice" and claims["aud"] == RESOURCE
    assert claims["scope"] == "files.read" and claims["act"] == {"sub": client}
    other_client = world.idp_token({"sub": "alice", "aud": ISSUER, "client_id": "someone",
                                    "resource": RESOURCE}, typ=ID_JAG_TYP)
    assert error_of(bearer, other_client).code == "invalid_grant"
    two_audiences = world.idp_token({"sub": "alice", "aud": [ISSUER, "x"], "client_id": client,
                                     "resource": RESOURCE}, typ=ID_JAG_TYP)
    assert error_of(bearer, two_audiences).code == "invalid_grant"
    assert error_of(bearer, jag, resource="https://other.example").code == "invalid_target"
    # jwt-bearer takes only ID-JAGs: a plain IdP token or a demo token is refused
    for plain in (world.idp_token({"sub": "alice", "aud": ISSUER, "client_id": client}),
                  world.user_token("alice")):
        error = error_of(bearer, plain, resource=RESOURCE)
        assert error.code == "invalid_grant" and ID_JAG_TYP in error.message
    # and token exchange refuses an ID-JAG as subject token
    error = error_of(world.exchange, jag, instance("helper"))
    assert error.code == "invalid_request" and "ID-JAG" in error.message
    untrusted = jwt.encode({"iss": "https://evil", "sub": "alice", "aud": ISSUER, "exp": 9e9},
                           world.idp_key, algorithm="ES256", headers={"kid": "idp-1"})
    assert error_of(bearer, untrusted, resource=RESOURCE).code == "invalid_grant"


def test_private_key_jwt_clients_register_and_authenticate(world: World) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [public_jwk(key.public_key(), "k1", "ES256")]}
    with pytest.raises(OAuthError) as caught:
        world.server.register({"client_name": "ci", "jwks": jwks}, admin=False)
    assert caught.value.code == "invalid_token" and caught.value.status == 401
    registered = world.server.register({"client_name": "ci", "jwks": jwks,
                                        "scope": "tools:jira.*"}, admin=True)
    client_id = registered["client_id"]

    def assertion(jti: str, aud: str = ISSUER) -> str:
        now = int(world.clock.timestamp())
        return jwt.encode({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 60,
                           "jti": jti}, key, algorithm="ES256", headers={"kid": "k1"})

    form = {"grant_type": [GRANT_TOKEN_EXCHANGE], "subject_token": [world.user_token()],
            "subject_token_type": ["urn:ietf:params:oauth:token-type:jwt"],
            "actor_token": [world.svid(instance("helper"))],
            "actor_token_type": ["urn:ietf:params:oauth:token-type:jwt"],
            "client_assertion_type": [ASSERTION_JWT_BEARER], "resource": [RESOURCE]}
    issued = world.server.token({**form, "client_assertion": [assertion("a")]})
    claims = world.claims(issued["access_token"])
    assert claims["client_id"] == client_id and claims["scope"] == "tools:jira.*"
    assert claims["act"] == {"sub": str(instance("helper"))}
    replay = error_of(world.server.token, {**form, "client_assertion": [assertion("a")]})
    assert replay.code == "invalid_client"
    wrong = error_of(world.server.token, {**form, "client_assertion": [assertion("b", "x")]})
    assert wrong.code == "invalid_client"
    wider = error_of(world.server.token, {**form, "client_assertion": [assertion("c")],
                                          "scope": ["tools:*"]})
    assert wider.code == "invalid_scope"
    cc = error_of(world.server.token, {"grant_type": [GRANT_CLIENT_CREDENTIALS],
                                       "client_assertion_type": [ASSERTION_JWT_BEARER],
                                       "client_assertion": [assertion("d")]})
    assert cc.code == "unauthorized_client"
    assert world.server.delete_client(client_id) is True


def test_agents_register_with_their_jwt_svid(world: World) -> None:
    statement = world.svid(instance("helper"))
    view = world.server.register({"software_statement": statement, "client_name": "helper",
                                  "scope": "tools:jira.*"}, admin=False)
    assert view["client_id"] == str(instance("helper"))
    assert view["token_endpoint_auth_method"] == "tls_client_auth"
    assert view["tls_client_auth_san_uri"] == str(instance("helper"))
    issued = world.exchange(world.user_token(), instance("helper"))
    assert world.claims(issued["access_token"])["scope"] == "tools:jira.*"
    bad = world.svid(instance("helper"), "someone-else")
    with pytest.raises(OAuthError) as caught:
        world.server.register({"software_statement": bad}, admin=False)
    assert caught.value.code == "invalid_software_statement"


def test_a_client_may_revoke_only_its_own_tokens(world: World) -> None:
    token = world.exchange(world.user_token(), instance("helper"))["access_token"]
    other = world.server.authenticate_client({
        "client_assertion_type": [ASSERTION_JWT_SPIFFE],
        "client_assertion": [world.svid(instance("sub"))]})
    assert error_of(world.server.revoke, token, other).code == "unauthorized_client"
    owner = world.server.authenticate_client({
        "client_assertion_type": [ASSERTION_JWT_SPIFFE],
        "client_assertion": [world.svid(instance("helper"))]})
    assert world.server.revoke(token, owner) == 1


def test_metadata_and_the_demo_issuer(world: World) -> None:
    world.server.bind("https://ignored", "https://mtls.example.org:8443")
    document = world.server.metadata()
    assert document["issuer"] == ISSUER
    assert document["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert document["mtls_endpoint_aliases"]["token_endpoint"] == \
        "https://mtls.example.org:8443/oauth/token"
    assert "urn:ietf:params:oauth:grant-profile:id-jag" in \
        document["authorization_grant_profiles_supported"]
    assert GRANT_JWT_BEARER in document["grant_types_supported"]
    assert document["tls_client_certificate_bound_access_tokens"] is True
    claims = world.claims(world.user_token("bob"))
    assert claims["iss"] == f"{ISSUER}/dev/issuer" and claims["aud"] == ISSUER
    assert world.server.demo_jwks()["keys"][0]["kid"].startswith("oauth-demo-")


def test_without_dev_mode_there_is_no_demo_issuer(world: World) -> None:
    plain = AuthorizationServer(
        bundle=world.authority.bundle,
        keys=SigningKeys(MemoryKeyManager(), "oauth-as", world.clock),
        tokens=world.tokens, clients=world.clients, agents=world.agents, users=world.users,
        clock=world.clock, issuer=ISSUER)
    assert plain.demo_issuer is None
    with pytest.raises(DemoIssuerDisabled):
        plain.mint_user_token("alice")
    demo_token = world.user_token()
    assert error_of(plain.token, {
        "grant_type": [GRANT_TOKEN_EXCHANGE], "subject_token": [demo_token],
        "subject_token_type": ["urn:ietf:params:oauth:token-type:jwt"],
        "client_assertion_type": [ASSERTION_JWT_SPIFFE],
        "client_assertion": [world.svid(instance("helper"))],
        "resource": [RESOURCE]}).code == "invalid_request"


def _jwt_bearer_form(world: World, assertion: str, client: SpiffeId) -> dict[str, list[str]]:
    return {"grant_type": [GRANT_JWT_BEARER], "assertion": [assertion],
            "client_assertion_type": [ASSERTION_JWT_SPIFFE],
            "client_assertion": [world.svid(client)], "resource": [RESOURCE]}


def test_may_act_binds_the_jwt_bearer_grant_too(world: World) -> None:
    jag = world.idp_token({"sub": "alice", "aud": ISSUER, "client_id": str(instance("sub")),
                           "may_act": {"sub": str(instance("helper"))}}, typ=ID_JAG_TYP)
    error = error_of(world.server.token, _jwt_bearer_form(world, jag, instance("sub")))
    assert error.code == "invalid_grant" and "may_act" in error.message
    allowed = world.idp_token({"sub": "alice", "aud": ISSUER,
                               "client_id": str(instance("helper")),
                               "may_act": {"sub": "spiffe://example.org/agent/helper"}},
                              typ=ID_JAG_TYP)
    issued = world.server.token(_jwt_bearer_form(world, allowed, instance("helper")))
    assert world.claims(issued["access_token"])["act"] == {"sub": str(instance("helper"))}


@pytest.mark.parametrize("may_act", ["spiffe://example.org/agent/helper", ["x"], 1, True])
def test_a_may_act_that_is_not_an_object_is_refused(world: World, may_act: Any) -> None:
    token = world.idp_token({"sub": "alice", "aud": ISSUER, "may_act": may_act})
    error = error_of(world.exchange, token, instance("helper"))
    assert error.code == "invalid_grant" and "may_act" in error.message


def test_a_tabard_token_extends_the_chain_only_for_its_audience(world: World) -> None:
    user = world.user_token("alice", scope="tools:jira.*")
    for_tool = world.exchange(user, instance("helper"))["access_token"]
    # another agent holding a token issued for a tool server can neither extend the chain
    # nor move it to another audience
    error = error_of(world.exchange, for_tool, instance("sub"),
                     resource="https://scanner.example.org/")
    assert error.code == "invalid_grant" and "not issued to" in error.message
    # nor can another instance of the same agent
    assert error_of(world.exchange, for_tool, instance("helper", "2")).code == "invalid_grant"
    # its holder may exchange it again: same chain, other resource, scope only narrowing
    again = world.exchange(for_tool, instance("helper"), resource="https://other.example/",
                           scope="tools:jira.read")
    claims = world.claims(again["access_token"])
    assert claims["act"] == {"sub": str(instance("helper"))}
    assert claims["aud"] == "https://other.example/" and claims["scope"] == "tools:jira.read"
    assert error_of(world.exchange, for_tool, instance("helper"),
                    scope="tools:*").code == "invalid_scope"
    # delegated to one instance: only that instance; to the agent: any instance of it
    for_instance = world.exchange(user, instance("helper"),
                                  resource=str(instance("sub", "3")))["access_token"]
    assert world.exchange(for_instance, instance("sub", "3"))["access_token"]
    assert error_of(world.exchange, for_instance, instance("sub")).code == "invalid_grant"
    for_agent = world.exchange(user, instance("helper"),
                               resource=agent_id("sub"))["access_token"]
    assert world.exchange(for_agent, instance("sub", "9"))["access_token"]


def test_an_agent_as_principal_token_is_not_taken_by_another_agent(world: World) -> None:
    cc = world.server.token({
        "grant_type": [GRANT_CLIENT_CREDENTIALS], "resource": [RESOURCE],
        "client_assertion_type": [ASSERTION_JWT_SPIFFE],
        "client_assertion": [world.svid(instance("cron"))]})["access_token"]
    assert error_of(world.exchange, cc, instance("helper")).code == "invalid_grant"


def test_agent_subjects_are_valid_resources_despite_allowed_resources(world: World) -> None:
    narrow = AuthorizationServer(
        bundle=world.authority.bundle,
        keys=SigningKeys(MemoryKeyManager(), "oauth-as", world.clock),
        tokens=world.tokens, clients=world.clients, agents=world.agents, users=world.users,
        clock=world.clock, issuer=ISSUER, allowed_resources=[RESOURCE],
        demo_keys=SigningKeys(MemoryKeyManager(), "oauth-demo", world.clock))
    user = narrow.mint_user_token("alice")
    form = {"grant_type": [GRANT_TOKEN_EXCHANGE], "subject_token": [user],
            "subject_token_type": ["urn:ietf:params:oauth:token-type:jwt"],
            "client_assertion_type": [ASSERTION_JWT_SPIFFE],
            "client_assertion": [world.svid(instance("helper"))]}
    assert narrow.token({**form, "resource": [agent_id("sub")]})["access_token"]
    error = error_of(narrow.token, {**form, "resource": ["https://elsewhere.example/"]})
    assert error.code == "invalid_target"
    error = error_of(narrow.token, {**form, "resource": ["spiffe://other.org/agent/x"]})
    assert error.code == "invalid_target"


def test_lifecycle_reaches_issued_tokens(world: World) -> None:
    token = world.exchange(world.user_token("alice"), instance("helper"),
                           resource=agent_id("sub"))["access_token"]
    assert world.claims(token)["sub_id"] == {"format": "iss_sub",
                                             "iss": f"{ISSUER}/dev/issuer", "sub": "alice"}
    world.users.users["alice"] = False
    assert world.server.introspect(token) == {"active": False}
    assert error_of(world.exchange, token, instance("sub")).code == "invalid_request"
    world.users.users["alice"] = True
    assert world.server.introspect(token)["active"] is True
    # a demo-issuer user must stay in the directory; one the directory forgets is inactive
    del world.users.users["alice"]
    assert world.server.introspect(token) == {"active": False}
    world.users.users["alice"] = True
    for state in ("suspended", "retired"):
        world.agents.add("helper", state=state)
        assert world.server.introspect(token) == {"active": False}, state
        assert error_of(world.exchange, token, instance("sub")).code == "invalid_request"
    world.agents.add("helper")
    assert world.exchange(token, instance("sub"))["access_token"]
    # revocation still reaches a token whose user is gone
    world.users.users["alice"] = False
    assert world.server.revoke(token, None) == 2


def test_lifecycle_of_provider_users_and_agent_principals(world: World) -> None:
    # a provider's user the directory does not know stays the provider's to vouch for
    vouched = world.exchange(world.idp_token({"sub": "dave@idp", "aud": ISSUER}),
                             instance("helper"))["access_token"]
    assert world.server.introspect(vouched)["active"] is True
    cc = world.server.token({
        "grant_type": [GRANT_CLIENT_CREDENTIALS], "resource": [RESOURCE],
        "client_assertion_type": [ASSERTION_JWT_SPIFFE],
        "client_assertion": [world.svid(instance("cron"))]})["access_token"]
    assert world.server.introspect(cc)["active"] is True
    world.agents.add("cron", delegation="agent_as_principal", state="suspended")
    assert world.server.introspect(cc) == {"active": False}
    with pytest.raises(OAuthError):
        world.server.verify_access_token(cc)


def test_private_key_jwt_assertions_need_a_jti_and_a_short_life(world: World) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client_id = world.server.register(
        {"jwks": {"keys": [public_jwk(key.public_key(), "k1", "ES256")]}},
        admin=True)["client_id"]
    now = int(world.clock.timestamp())

    def authenticate(**claims: Any) -> Any:
        assertion = jwt.encode({"iss": client_id, "sub": client_id, "aud": ISSUER, **claims},
                               key, algorithm="ES256", headers={"kid": "k1"})
        return world.server.authenticate_client({
            "client_assertion_type": [ASSERTION_JWT_BEARER], "client_assertion": [assertion]})

    for claims, words in (({"exp": now + 60}, "jti"),
                          ({"exp": now + 3600, "iat": now, "jti": "a"}, "at most"),
                          ({"exp": now + 3600, "jti": "b"}, "at most")):
        error = error_of(authenticate, **claims)
        assert error.code == "invalid_client" and words in error.message, claims
    assert authenticate(exp=now + 300, iat=now, jti="c").client_id == client_id
    assert authenticate(exp=now + 120, jti="d").client_id == client_id


def test_the_replay_cache_never_forgets_a_live_assertion() -> None:
    from tabard.oauth.server import _ReplayCache

    cache = _ReplayCache(size=2)
    assert cache.first_use("long", 1000, now=0) and cache.first_use("short", 10, now=0)
    # the short one expired: its place is free, and the long one is still remembered
    assert cache.first_use("x", 500, now=20)
    assert not cache.first_use("long", 1000, now=30)
    # full of live entries: refused, never by forgetting one
    with pytest.raises(OAuthError) as caught:
        cache.first_use("y", 500, now=30)
    assert caught.value.code == "temporarily_unavailable"
    assert not cache.first_use("x", 500, now=40) and not cache.first_use("long", 1000, now=40)
    assert cache.first_use("y", 900, now=600)


def test_the_actor_token_has_the_as_as_its_only_audience(world: World) -> None:
    error = error_of(world.exchange, world.user_token(), instance("helper"),
                     actor_token=False,
                     actor_token_value=world.svid(instance("helper"), [ISSUER, RESOURCE]))
    assert error.code == "invalid_request" and "only audience" in error.message


def test_registering_an_existing_client_again_may_only_narrow_it(world: World) -> None:
    def register(**metadata: Any) -> dict[str, Any]:
        return world.server.register(
            {"software_statement": world.svid(instance("helper")), **metadata}, admin=False)

    register(client_name="helper", scope="tools:jira.*",
             grant_types=[GRANT_TOKEN_EXCHANGE, GRANT_JWT_BEARER])
    for wider in ({"scope": "tools:*"}, {},
                  {"scope": "tools:jira.read", "grant_types": [GRANT_CLIENT_CREDENTIALS]}):
        error = error_of(register, **wider)
        assert error.code == "invalid_client_metadata" and "already registered" in \
            error.message, wider
    assert world.clients.get(str(instance("helper"))).scope == "tools:jira.*"  # type: ignore[union-attr]
    narrowed = register(scope="tools:jira.read", grant_types=[GRANT_TOKEN_EXCHANGE])
    assert narrowed["scope"] == "tools:jira.read"
    assert world.server.delete_client(str(instance("helper")))
    assert register(scope="tools:*")["scope"] == "tools:*"


def test_registration_refuses_unusable_jwks(world: World) -> None:
    good = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "k1", "ES256")
    for keys in (["abc"], [1], [{**good, "alg": "none"}], [{**good, "alg": "HS256"}],
                 [{**good, "alg": "RS256"}], [{"kty": "oct", "k": "AAAA"}]):
        error = error_of(world.server.register, {"jwks": {"keys": keys}}, admin=True)
        assert error.code == "invalid_client_metadata", keys
