"""JwtSvidCache (the gateway's agent-token cache): a hit is served without a signature check
and still re-checks expiry, audience and that the bundle passed now holds the key."""

from __future__ import annotations

import pytest

import tabard.spiffe.jwtsvid as jwtsvid
from tabard.spiffe import Bundle, BundleSet, JwtAuthority, JwtSvidCache, JwtSvidError, TrustDomain
from tests.support.pki import NOW, jwt_claims, new_key, sign_jwt

TD = TrustDomain("example.org")
AUD = "spiffe://example.org/gateway"
KEY = new_key()
NOW_TS = NOW.timestamp()


def bundles(*authorities: JwtAuthority) -> BundleSet:
    return BundleSet([Bundle(TD, (), authorities, sequence=1)])


K1 = bundles(JwtAuthority("k1", KEY.public_key()))


def mint(n: int = 0, ttl: float = 300) -> str:
    return sign_jwt(jwt_claims(aud=AUD, ttl=ttl, jti=f"t{n}"), KEY, kid="k1")


def reason(cache: JwtSvidCache, token: str, source: BundleSet = K1, *, now: float = NOW_TS,
           audience: str = AUD, leeway: float = 0) -> str:
    with pytest.raises(JwtSvidError) as info:
        cache.verify(token, source, audience, now=now, leeway=leeway)
    return info.value.reason


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = jwtsvid._verify

    def counting(token: str, *args: object) -> jwtsvid._Verified:
        seen.append(token)
        return real(token, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(jwtsvid, "_verify", counting)
    return seen


def test_a_hit_is_not_verified_again(verifications: list[str]) -> None:
    cache, token = JwtSvidCache(), mint()
    first = cache.verify(token, K1, AUD, now=NOW_TS)
    second = cache.verify(token, K1, AUD, now=NOW_TS + 10)
    assert second is first and len(verifications) == 1 and len(cache) == 1


def test_a_hit_past_expiry_is_refused_and_dropped() -> None:
    cache, token = JwtSvidCache(), mint(ttl=60)
    cache.verify(token, K1, AUD, now=NOW_TS, leeway=30)
    assert cache.verify(token, K1, AUD, now=NOW_TS + 89, leeway=30)
    assert reason(cache, token, now=NOW_TS + 90, leeway=30) == "expired"
    assert len(cache) == 0


def test_a_key_gone_from_the_bundle_ends_its_cached_tokens(verifications: list[str]) -> None:
    cache, token = JwtSvidCache(), mint()
    cache.verify(token, K1, AUD, now=NOW_TS)
    rotated = bundles(JwtAuthority("k2", new_key().public_key()))
    assert reason(cache, token, rotated) == "unknown_kid"
    assert len(cache) == 0 and len(verifications) == 2
    # the same kid with another key is no match either
    swapped = bundles(JwtAuthority("k1", new_key().public_key()))
    cache.verify(token, K1, AUD, now=NOW_TS)
    assert reason(cache, token, swapped) == "bad_signature"


def test_the_audience_is_checked_on_a_hit() -> None:
    cache, token = JwtSvidCache(), mint()
    cache.verify(token, K1, AUD, now=NOW_TS)
    assert reason(cache, token, audience="https://elsewhere") == "audience_mismatch"


def test_failures_are_not_cached_and_the_size_is_bounded() -> None:
    cache = JwtSvidCache(size=2)
    assert reason(cache, mint(ttl=60), now=NOW_TS + 61) == "expired"
    assert len(cache) == 0
    for n in range(3):
        cache.verify(mint(n), K1, AUD, now=NOW_TS)
    assert len(cache) == 2


def test_size_zero_verifies_every_time(verifications: list[str]) -> None:
    cache, token = JwtSvidCache(size=0), mint()
    cache.verify(token, K1, AUD, now=NOW_TS)
    cache.verify(token, K1, AUD, now=NOW_TS)
    assert len(verifications) == 2 and len(cache) == 0
