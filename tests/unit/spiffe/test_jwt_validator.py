"""JwtSvidValidator: the verified-token cache and what a cache hit still checks."""

from __future__ import annotations

import threading

import pytest

from tabard.clock import FakeClock
from tabard.spiffe import (
    Bundle,
    BundleSet,
    JwtAuthority,
    JwtSvidError,
    JwtSvidValidator,
    TrustDomain,
)
from tests.support.pki import NOW, jwt_claims, new_key, sign_jwt

TD = TrustDomain("example.org")
AUD = "spiffe://example.org/service"
KEY = new_key()


def bundle_with(*authorities: JwtAuthority, sequence: int = 1) -> Bundle:
    return Bundle(TD, (), authorities, sequence=sequence)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def bundles() -> BundleSet:
    return BundleSet([bundle_with(JwtAuthority("k1", KEY.public_key()))])


def mint(n: int = 0, ttl: float = 300, aud: str | list[str] = AUD) -> str:
    return sign_jwt(jwt_claims(aud=aud, ttl=ttl, jti=f"t{n}"), KEY, kid="k1")


def reason_of(validator: JwtSvidValidator, token: str, audience: str = AUD) -> str:
    with pytest.raises(JwtSvidError) as info:
        validator.validate(token, audience)
    return info.value.reason


def test_a_hit_returns_the_same_result(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    token = mint()
    first = validator.validate(token, AUD)
    assert validator.cache_entries == 1
    second = validator.validate(token, AUD)
    assert second is first  # served from the cache, not verified again
    assert str(second.spiffe_id) == "spiffe://example.org/workload"


def test_an_expired_token_is_rejected_on_a_hit(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    token = mint(ttl=60)
    validator.validate(token, AUD)
    clock.advance(59)
    assert validator.validate(token, AUD)
    clock.advance(1)
    assert reason_of(validator, token) == "expired"
    assert validator.cache_entries == 0  # and it is dropped


def test_leeway_applies_to_hits_too(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock, leeway=10)
    token = mint(ttl=60)
    validator.validate(token, AUD)
    clock.advance(69)
    assert validator.validate(token, AUD)
    clock.advance(1)
    assert reason_of(validator, token) == "expired"


def test_the_audience_is_checked_on_a_hit(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    token = mint(aud=[AUD, "other"])
    validator.validate(token, AUD)
    assert reason_of(validator, token, "spiffe://example.org/elsewhere") == "audience_mismatch"
    assert validator.validate(token, "other") is validator.validate(token, AUD)


def test_removing_the_key_rejects_a_cached_token(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    token = mint()
    validator.validate(token, AUD)
    bundles.put(bundle_with(JwtAuthority("k2", new_key().public_key()), sequence=2))
    assert reason_of(validator, token) == "unknown_kid"
    assert validator.cache_entries == 0


def test_a_different_key_under_the_same_kid_rejects_a_cached_token(
    bundles: BundleSet, clock: FakeClock
) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    token = mint()
    validator.validate(token, AUD)
    bundles.put(bundle_with(JwtAuthority("k1", new_key().public_key()), sequence=2))
    assert reason_of(validator, token) == "bad_signature"


def test_dropping_the_trust_domain_rejects_a_cached_token(
    bundles: BundleSet, clock: FakeClock
) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    token = mint()
    validator.validate(token, AUD)
    bundles.remove(TD)
    assert reason_of(validator, token) == "untrusted_trust_domain"


def test_a_refreshed_bundle_with_the_same_key_keeps_the_hit(
    bundles: BundleSet, clock: FakeClock
) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    token = mint()
    first = validator.validate(token, AUD)
    # a new bundle object, parsed from the wire: equal key, different object
    reparsed = Bundle.parse(TD, bundle_with(JwtAuthority("k1", KEY.public_key())).to_json())
    assert reparsed.jwt_authorities[0].public_key is not KEY.public_key()
    bundles.put(reparsed)
    assert validator.validate(token, AUD) is first


def test_the_cache_is_a_bounded_lru(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock, cache_size=3)
    tokens = [mint(n) for n in range(6)]
    results = [validator.validate(t, AUD) for t in tokens[:3]]
    assert validator.cache_entries == 3
    validator.validate(tokens[0], AUD)  # most recently used now
    validator.validate(tokens[3], AUD)  # evicts tokens[1], the least recently used
    assert validator.cache_entries == 3
    assert validator.validate(tokens[0], AUD) is results[0]
    assert validator.validate(tokens[2], AUD) is results[2]
    assert validator.validate(tokens[1], AUD) is not results[1]  # verified again
    for token in tokens:
        validator.validate(token, AUD)
    assert validator.cache_entries == 3


def test_failures_are_not_cached(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    early = sign_jwt(jwt_claims(nbf=int(NOW.timestamp()) + 10, jti="early"), KEY, kid="k1")
    assert reason_of(validator, early) == "not_yet_valid"
    assert reason_of(validator, mint(), "wrong audience") == "audience_mismatch"
    assert reason_of(validator, "garbage") == "malformed"
    assert validator.cache_entries == 0
    clock.advance(10)
    assert validator.validate(early, AUD)
    assert validator.cache_entries == 1


def test_a_zero_size_cache_never_stores(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock, cache_size=0)
    token = mint()
    assert validator.validate(token, AUD) is not validator.validate(token, AUD)
    assert validator.cache_entries == 0
    with pytest.raises(ValueError):
        JwtSvidValidator(bundles, clock=clock, cache_size=-1)


def test_clear_empties_the_cache(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock)
    validator.validate(mint(), AUD)
    validator.clear()
    assert validator.cache_entries == 0


def test_concurrent_use_stays_consistent(bundles: BundleSet, clock: FakeClock) -> None:
    validator = JwtSvidValidator(bundles, clock=clock, cache_size=8)
    tokens = [mint(n) for n in range(16)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(200):
                token = tokens[(i + offset) % len(tokens)]
                assert validator.validate(token, AUD).token == token
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert validator.cache_entries <= 8
