"""The AS's verified-token cache (the gateway path): what it saves, and that no revoked
token, deactivated user or suspended agent gets through beyond the freshness window."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tabard.oauth import InvalidToken, VerifiedTokenCache
from tests.unit.oauth.conftest import RESOURCE, World, instance

WINDOW = 1.0


@pytest.fixture
def reads(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The cached server (1 s window) and a log of its token-record reads."""
    world.server.verified = VerifiedTokenCache(window=WINDOW, size=100)
    seen: list[str] = []
    real = world.tokens.get

    def get(jti: str) -> object:
        seen.append(jti)
        return real(jti)

    monkeypatch.setattr(world.tokens, "get", get)
    return seen


def delegated(world: World) -> str:
    return str(world.exchange(world.user_token("alice"), instance("helper"))["access_token"])


def accepted(world: World, token: str) -> bool:
    try:
        world.server.verify_access_token(token)
    except InvalidToken:
        return False
    return True


def test_a_verified_token_is_served_without_reading_its_record(world: World,
                                                               reads: list[str]) -> None:
    token = delegated(world)
    reads.clear()
    first = world.server.verify_access_token(token)
    first["sub"] = "mallory"  # the caller's copy: the cache keeps its own
    second = world.server.verify_access_token(token)
    assert second["sub"] == "alice" and len(reads) == 1
    world.clock.advance(WINDOW)  # the window is over: checked again
    assert world.server.verify_access_token(token)["aud"] == RESOURCE
    assert len(reads) == 2


def test_revoking_through_the_as_takes_effect_at_once(world: World, reads: list[str]) -> None:
    token = delegated(world)
    assert accepted(world, token)
    assert world.server.revoke(token, None) == 1
    assert not accepted(world, token)


def test_a_revocation_elsewhere_is_seen_within_the_window(world: World,
                                                          reads: list[str]) -> None:
    token = delegated(world)
    assert accepted(world, token)
    jti = str(world.claims(token)["jti"])
    world.tokens.revoke_tree(jti, world.clock.now())  # another process, straight to the store
    world.clock.advance(WINDOW - 0.001)
    assert accepted(world, token)  # the documented window
    world.clock.advance(0.001)
    assert not accepted(world, token)


def test_a_suspended_agent_is_refused_within_the_window_or_at_once_when_told(
        world: World, reads: list[str]) -> None:
    token = delegated(world)
    assert accepted(world, token)
    world.agents.add("helper", state="suspended")
    world.clock.advance(WINDOW - 0.001)
    assert accepted(world, token)
    world.clock.advance(0.001)
    assert not accepted(world, token)
    # in the process that made the change, the composition root drops the cache at once
    world.agents.add("helper")
    world.clock.advance(WINDOW)
    assert accepted(world, token)
    world.agents.add("helper", state="suspended")
    world.server.forget_verified()
    assert not accepted(world, token)


def test_a_deactivated_user_is_refused_within_the_window(world: World,
                                                         reads: list[str]) -> None:
    token = delegated(world)
    assert accepted(world, token)
    world.users.users["alice"] = False
    assert accepted(world, token)
    world.clock.advance(WINDOW)
    assert not accepted(world, token)


def test_no_entry_outlives_the_token(world: World, reads: list[str]) -> None:
    world.server.verified = VerifiedTokenCache(window=3600, size=100)
    token = delegated(world)  # a 5 minute token
    world.clock.advance(timedelta(minutes=5) - timedelta(milliseconds=1))
    assert accepted(world, token)
    world.clock.advance(timedelta(milliseconds=1))
    assert not accepted(world, token)


def test_failures_are_not_cached(world: World, reads: list[str]) -> None:
    token = delegated(world)
    world.agents.add("helper", state="suspended")
    assert not accepted(world, token)
    world.agents.add("helper")
    assert accepted(world, token)


def test_a_check_running_across_a_revocation_cannot_store_its_result() -> None:
    cache = VerifiedTokenCache(window=WINDOW, size=10)
    key = cache.key("token")
    generation = cache.generation  # a check starts, reads the record (still active) ...
    cache.clear()  # ... the token is revoked in this process ...
    cache.put(key, {"sub": "alice"}, now=0, expires=100, generation=generation)
    assert cache.get(key, 0) is None  # ... and its stale result is not kept


def test_the_cache_is_bounded_and_off_at_window_zero() -> None:
    cache = VerifiedTokenCache(window=WINDOW, size=2)
    for n in range(3):
        cache.put(cache.key(f"t{n}"), {}, now=0, expires=10, generation=cache.generation)
    assert len(cache) == 2 and cache.get(cache.key("t0"), 0) is None
    off = VerifiedTokenCache(window=0)
    off.put(off.key("t"), {}, now=0, expires=10, generation=off.generation)
    assert not off.enabled and off.get(off.key("t"), 0) is None


def test_dual_token_user_tokens_are_cached_per_audience_and_honour_the_directory(
        world: World, reads: list[str]) -> None:
    token = world.idp_token({"sub": "alice", "aud": RESOURCE})
    assert world.server.verify_user_token(token, [RESOURCE])["sub"] == "alice"
    with pytest.raises(InvalidToken):  # another audience is its own check, and fails
        world.server.verify_user_token(token, ["https://elsewhere.example"])
    world.users.users["alice"] = False
    assert world.server.verify_user_token(token, [RESOURCE])["sub"] == "alice"
    world.clock.advance(WINDOW)
    with pytest.raises(InvalidToken):
        world.server.verify_user_token(token, [RESOURCE])
