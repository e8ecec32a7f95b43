"""X509SvidCache (the gateway's mTLS cache): a hit skips path validation only while the
bundle serves the same authorities and the time is inside every certificate's validity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import tabard.spiffe.x509svid as x509svid
from tabard.spiffe import Bundle, SpiffeId, TrustDomain, X509SvidCache, X509SvidError
from tests.support.pki import NOW, Issued, make_ca, make_leaf

TD = TrustDomain("example.org")
ID = "spiffe://example.org/agent/a/instance/1"


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_ca()


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[SpiffeId]:
    seen: list[SpiffeId] = []
    real = x509svid.verify_x509_svid

    def counting(*args: object, **kwargs: object) -> SpiffeId:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(found)
        return found

    monkeypatch.setattr(x509svid, "verify_x509_svid", counting)
    return seen


def der(*issued: Issued) -> list[bytes]:
    return [i.cert.public_bytes(Encoding.DER) for i in issued]


def test_a_hit_skips_path_validation(root: Issued, validations: list[SpiffeId]) -> None:
    cache, bundle, chain = X509SvidCache(), Bundle(TD, (root.cert,)), der(make_leaf(root, ID))
    assert str(cache.verify(chain, bundle, at=NOW)) == ID
    assert str(cache.verify(chain, bundle, at=NOW + timedelta(minutes=5))) == ID
    assert len(validations) == 1 and len(cache) == 1


def test_an_expired_leaf_is_refused_on_a_hit(root: Issued) -> None:
    cache, bundle = X509SvidCache(), Bundle(TD, (root.cert,))
    chain = der(make_leaf(root, ID, not_after=NOW + timedelta(minutes=10)))
    cache.verify(chain, bundle, at=NOW)
    assert cache.verify(chain, bundle, at=NOW + timedelta(minutes=10))
    with pytest.raises(X509SvidError) as info:
        cache.verify(chain, bundle, at=NOW + timedelta(minutes=10, seconds=1))
    assert info.value.reason == "expired" and len(cache) == 0


def test_a_new_bundle_validates_again_and_a_removed_ca_ends_its_chains(
        root: Issued, validations: list[SpiffeId]) -> None:
    cache, chain = X509SvidCache(), der(make_leaf(root, ID))
    cache.verify(chain, Bundle(TD, (root.cert,)), at=NOW)
    cache.verify(chain, Bundle(TD, (root.cert,)), at=NOW)  # same anchors, a new bundle
    assert len(validations) == 2
    other = make_ca(common_name="the next root")
    with pytest.raises(X509SvidError) as info:
        cache.verify(chain, Bundle(TD, (other.cert,)), at=NOW)
    assert info.value.reason == "unknown_authority" and len(cache) == 0


def test_failures_are_not_cached_and_the_size_is_bounded(root: Issued) -> None:
    cache, bundle = X509SvidCache(size=2), Bundle(TD, (root.cert,))
    stranger = der(make_leaf(make_ca(common_name="stranger"), ID))
    with pytest.raises(X509SvidError):
        cache.verify(stranger, bundle, at=NOW)
    assert len(cache) == 0
    with pytest.raises(ValueError):
        cache.verify([b"not DER"], bundle, at=NOW)
    for n in range(3):
        cache.verify(der(make_leaf(root, f"{ID}{n}")), bundle, at=NOW)
    assert len(cache) == 2
