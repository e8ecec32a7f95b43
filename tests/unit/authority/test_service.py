"""The Authority facade: initialization, minting, bundles, rotation, retirement, restart."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import VerificationError

from tabard.authority import (
    Authority,
    AuthorityNotFoundError,
    AuthorityNotReadyError,
    AuthorityStateError,
    DiskKeyManager,
    KeyType,
    MemoryKeyManager,
    SvidRequestError,
    UpstreamCA,
)
from tabard.authority.service import MintedX509Svid
from tabard.clock import FakeClock
from tabard.errors import Conflict, Invalid, NotFound, Unavailable
from tabard.spiffe import Bundle, SpiffeId
from tests.fakes.authority_store import InMemoryAuthorityStore
from tests.unit.authority.conftest import TD, WORKLOAD, AuthorityFactory, verify_chain

KEK = b"service-test-key-encryption-key-1"


def _validates(svid: MintedX509Svid, bundle: Bundle, clock: FakeClock) -> bool:
    try:
        verify_chain(svid.chain, bundle.x509_authorities, clock.now())
    except VerificationError:
        return False
    return True


def _jwt_validates(token: str, bundle: Bundle, audience: str = "aud") -> bool:
    kid = jwt.get_unverified_header(token)["kid"]
    authority = bundle.jwt_authority(kid)
    if authority is None:
        return False
    jwt.decode(token, authority.public_key, algorithms=["ES256", "RS256"], audience=audience,
               options={"verify_exp": False})
    return True


def _states(authority: Authority, kind: str) -> list[str]:
    return [r.state for r in authority.authorities() if r.kind == kind]


# --- initialization and minting ------------------------------------------------------------


def test_first_start_creates_one_active_key_per_kind(make_authority: AuthorityFactory) -> None:
    authority = make_authority()
    assert _states(authority, "x509") == ["active"]
    assert _states(authority, "jwt") == ["active"]
    bundle = authority.bundle()
    assert bundle.trust_domain == TD
    assert len(bundle.x509_authorities) == 1
    assert len(bundle.jwt_authorities) == 1
    assert bundle.sequence >= 1
    assert bundle.refresh_hint == 300
    jwt_record = authority.active_authority("jwt")
    assert jwt_record is not None
    assert bundle.jwt_authorities[0].key_id == jwt_record.key_id
    assert authority.ensure_initialized() == []  # idempotent
    assert authority.bundle() is bundle  # cached while nothing changes
    Bundle.parse(TD, bundle.to_json())  # a valid SPIFFE bundle document


def test_minting_before_initialization_is_refused(
    key_manager: MemoryKeyManager, store: InMemoryAuthorityStore, clock: FakeClock
) -> None:
    authority = Authority(TD, key_manager, store, clock)
    with pytest.raises(AuthorityNotReadyError) as info:
        authority.mint_x509_svid(WORKLOAD)
    assert isinstance(info.value, Unavailable)
    with pytest.raises(AuthorityNotReadyError):
        authority.mint_jwt_svid(WORKLOAD, "aud")


def test_x509_svid_with_generated_key(make_authority: AuthorityFactory, clock: FakeClock) -> None:
    authority = make_authority()
    svid = authority.mint_x509_svid(WORKLOAD, dns_names=["triage.internal"])
    assert svid.private_key is not None
    assert svid.leaf.public_key() == svid.private_key.public_key()
    assert svid.expires_at == (clock.now() + timedelta(hours=1)).replace(microsecond=0)
    assert len(svid.chain) == 1
    verified = verify_chain(svid.chain, authority.bundle().x509_authorities, clock.now())
    assert x509.UniformResourceIdentifier(str(WORKLOAD)) in (verified.subjects or [])
    san = svid.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["triage.internal"]


def test_x509_svid_for_a_caller_key_and_ttl_caps(
    make_authority: AuthorityFactory, clock: FakeClock
) -> None:
    authority = make_authority(max_x509_svid_ttl=timedelta(hours=2))
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    short = authority.mint_x509_svid(WORKLOAD, public, ttl=timedelta(minutes=10))
    assert short.private_key is None
    assert short.leaf.public_key() == public
    assert short.expires_at == (clock.now() + timedelta(minutes=10)).replace(microsecond=0)
    long = authority.mint_x509_svid(WORKLOAD, public, ttl=timedelta(days=3))
    assert long.expires_at == (clock.now() + timedelta(hours=2)).replace(microsecond=0)
    with pytest.raises(SvidRequestError):
        authority.mint_x509_svid(WORKLOAD, public, ttl=timedelta(0))
    with pytest.raises(SvidRequestError):
        authority.mint_x509_svid(SpiffeId.parse("spiffe://other.org/agent/x"), public)
    with pytest.raises(SvidRequestError):
        authority.mint_x509_svid(TD.id, public)


def test_jwt_svid(make_authority: AuthorityFactory, clock: FakeClock) -> None:
    authority = make_authority(max_jwt_svid_ttl=timedelta(minutes=30))
    token = authority.mint_jwt_svid(WORKLOAD, ["spiffe://example.org/billing"])
    header = jwt.get_unverified_header(token)
    record = authority.active_authority("jwt")
    assert record is not None
    assert header == {"alg": "ES256", "kid": record.key_id, "typ": "JWT"}
    key = authority.bundle().jwt_authority(header["kid"])
    assert key is not None
    claims = jwt.decode(
        token, key.public_key, algorithms=["ES256"], audience="spiffe://example.org/billing",
        options={"verify_exp": False},
    )
    assert claims["exp"] - claims["iat"] == 300
    capped = jwt.decode(
        authority.mint_jwt_svid(WORKLOAD, "a", ttl=timedelta(hours=5)),
        options={"verify_signature": False},
    )
    assert capped["exp"] - capped["iat"] == 1800
    with pytest.raises(SvidRequestError):
        authority.mint_jwt_svid(WORKLOAD, [])
    with pytest.raises(SvidRequestError):
        authority.mint_jwt_svid(SpiffeId.parse("spiffe://other.org/x"), "a")


def test_rsa_configuration(make_authority: AuthorityFactory, clock: FakeClock) -> None:
    authority = make_authority(key_type=KeyType.RSA_2048, jwt_algorithm="RS256")
    record = authority.active_authority("jwt")
    assert record is not None and record.key_type is KeyType.RSA_2048
    svid = authority.mint_x509_svid(WORKLOAD)
    verify_chain(svid.chain, authority.bundle().x509_authorities, clock.now())
    token = authority.mint_jwt_svid(WORKLOAD, "aud")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert _jwt_validates(token, authority.bundle())


@pytest.mark.parametrize(
    "options",
    [
        {"ca_ttl": timedelta(0)},
        {"x509_svid_ttl": timedelta(hours=5), "max_x509_svid_ttl": timedelta(hours=4)},
        {"jwt_algorithm": "HS256"},
        {"jwt_algorithm": "ES256", "jwt_key_type": KeyType.RSA_2048},
        {"refresh_hint": 0},
    ],
)
def test_bad_configuration_is_refused(
    key_manager: MemoryKeyManager,
    store: InMemoryAuthorityStore,
    clock: FakeClock,
    options: dict[str, object],
) -> None:
    with pytest.raises(Invalid):
        Authority(TD, key_manager, store, clock, **options)  # type: ignore[arg-type]


# --- manual rotation and retirement --------------------------------------------------------


def test_rotation_keeps_old_svids_valid_until_retired(
    make_authority: AuthorityFactory, key_manager: MemoryKeyManager, clock: FakeClock
) -> None:
    authority = make_authority()
    before = authority.mint_x509_svid(WORKLOAD)
    token_before = authority.mint_jwt_svid(WORKLOAD, "aud")
    old_x509 = authority.active_authority("x509")
    old_jwt = authority.active_authority("jwt")
    assert old_x509 is not None and old_jwt is not None
    sequence = authority.bundle().sequence

    clock.advance(timedelta(minutes=1))
    activated = authority.rotate()
    assert [r.kind for r in activated] == ["x509", "jwt"]
    assert all(r.state == "active" and r.activated_at == clock.now() for r in activated)
    assert _states(authority, "x509") == ["old", "active"]
    bundle = authority.bundle()
    assert bundle.sequence > sequence  # two new keys were published
    assert len(bundle.x509_authorities) == 2 and len(bundle.jwt_authorities) == 2

    after = authority.mint_x509_svid(WORKLOAD)
    assert after.leaf.issuer != before.leaf.issuer
    assert _validates(before, bundle, clock) and _validates(after, bundle, clock)
    token_after = authority.mint_jwt_svid(WORKLOAD, "aud")
    assert _jwt_validates(token_before, bundle) and _jwt_validates(token_after, bundle)

    retired = authority.retire(old_x509.id)
    assert retired.state == "retired" and retired.retired_at == clock.now()
    authority.retire(old_jwt.id)
    bundle2 = authority.bundle()
    assert bundle2.sequence == bundle.sequence + 2
    assert len(bundle2.x509_authorities) == 1 and len(bundle2.jwt_authorities) == 1
    assert not _validates(before, bundle2, clock)
    assert _validates(after, bundle2, clock)
    assert not _jwt_validates(token_before, bundle2)
    assert _jwt_validates(token_after, bundle2)
    assert old_x509.key_id not in key_manager.key_ids()  # private key destroyed
    assert authority.retire(old_x509.id).state == "retired"  # idempotent
    assert authority.bundle().sequence == bundle2.sequence


def test_rotate_uses_the_prepared_key(make_authority: AuthorityFactory, clock: FakeClock) -> None:
    authority = make_authority()
    clock.advance(timedelta(hours=12))
    changed = authority.tick()
    prepared = [r for r in changed if r.state == "prepared"]
    assert {r.kind for r in prepared} == {"x509", "jwt"}
    sequence = authority.bundle().sequence
    activated = authority.rotate("x509")
    assert [r.id for r in activated] == [r.id for r in prepared if r.kind == "x509"]
    assert authority.bundle().sequence == sequence  # nothing new was published
    assert _states(authority, "jwt") == ["active", "prepared"]


def test_active_key_cannot_be_retired(make_authority: AuthorityFactory) -> None:
    authority = make_authority()
    active = authority.active_authority("x509")
    assert active is not None
    with pytest.raises(AuthorityStateError) as info:
        authority.retire(active.id)
    assert isinstance(info.value, Conflict)
    with pytest.raises(AuthorityNotFoundError) as missing:
        authority.retire("no-such-record")
    assert isinstance(missing.value, NotFound)
    with pytest.raises(Invalid):
        authority.rotate("pgp")  # type: ignore[arg-type]


def test_prepared_key_can_be_retired(make_authority: AuthorityFactory, clock: FakeClock) -> None:
    authority = make_authority()
    clock.advance(timedelta(hours=12))
    prepared = next(r for r in authority.tick() if r.kind == "jwt")
    assert len(authority.bundle().jwt_authorities) == 2
    authority.retire(prepared.id)
    assert len(authority.bundle().jwt_authorities) == 1
    clock.advance(timedelta(minutes=1))
    assert [r.state for r in authority.tick() if r.kind == "jwt"] == ["prepared"]  # a new one


# --- the schedule --------------------------------------------------------------------------


def test_schedule_prepares_at_half_life_and_activates_at_two_thirds(
    make_authority: AuthorityFactory, clock: FakeClock
) -> None:
    authority = make_authority()
    first = authority.active_authority("x509")
    assert first is not None
    clock.advance(timedelta(hours=11, minutes=59))
    assert authority.tick() == []
    clock.advance(timedelta(minutes=1))
    assert {(r.kind, r.state) for r in authority.tick()} == {
        ("x509", "prepared"), ("jwt", "prepared"),
    }
    assert len(authority.bundle().x509_authorities) == 2  # published before it signs
    first_ca = x509.load_pem_x509_certificate(first.certificate_pem or b"")
    assert authority.mint_x509_svid(WORKLOAD).leaf.issuer == first_ca.subject  # not signing yet
    clock.advance(timedelta(hours=3, minutes=59))
    assert authority.tick() == []
    assert authority.active_authority("x509") == first
    clock.advance(timedelta(minutes=1))  # 16 h = 2/3 of 24 h
    changed = {(r.kind, r.state) for r in authority.tick()}
    assert changed == {("x509", "active"), ("x509", "old"), ("jwt", "active"), ("jwt", "old")}
    assert _states(authority, "x509") == ["old", "active"]
    clock.advance(timedelta(hours=8))  # the first key's not_after
    retired = authority.tick()
    assert {(r.kind, r.state) for r in retired} >= {("x509", "retired"), ("jwt", "retired")}
    assert len(authority.bundle().x509_authorities) <= 2
    assert first.id in {r.id for r in retired}


def test_activation_waits_for_the_publish_lead(
    make_authority: AuthorityFactory, clock: FakeClock
) -> None:
    authority = make_authority(refresh_hint=3 * 3600)  # lead = 9 h > the 4 h between 1/2 and 2/3
    clock.advance(timedelta(hours=12))
    authority.tick()
    clock.advance(timedelta(hours=4))
    assert authority.tick() == []
    clock.advance(timedelta(hours=5))
    assert {r.state for r in authority.tick()} == {"active", "old"}


def test_long_downtime_recovers_at_once(make_authority: AuthorityFactory, clock: FakeClock) -> None:
    authority = make_authority()
    stale = authority.mint_x509_svid(WORKLOAD)
    clock.advance(timedelta(hours=30))  # the only CA expired while nobody ticked
    changed = authority.tick()
    assert {(r.kind, r.state) for r in changed} >= {("x509", "active"), ("x509", "retired")}
    assert _states(authority, "x509") == ["retired", "active"]
    fresh = authority.mint_x509_svid(WORKLOAD)
    assert _validates(fresh, authority.bundle(), clock)
    assert not _validates(stale, authority.bundle(), clock)


def test_every_unexpired_svid_validates_through_days_of_rotation(
    make_authority: AuthorityFactory, clock: FakeClock
) -> None:
    """The invariant rotation exists for, checked every 20 minutes over four days."""
    authority = make_authority(x509_svid_ttl=timedelta(hours=4))
    start = clock.now()
    live: list[MintedX509Svid] = []
    tokens: list[tuple[str, float]] = []
    first_seen: dict[bytes, datetime] = {}
    generations: set[x509.Name] = set()
    while clock.now() < start + timedelta(days=4):
        authority.tick()
        bundle = authority.bundle()
        assert 1 <= len(bundle.x509_authorities) <= 3
        for root in bundle.x509_authorities:
            first_seen.setdefault(root.public_bytes(serialization.Encoding.DER), clock.now())
        assert [r.state for r in authority.authorities() if r.state == "active"] == [
            "active", "active",
        ]
        svid = authority.mint_x509_svid(WORKLOAD)
        issuer_root = next(
            r for r in bundle.x509_authorities if r.subject == svid.leaf.issuer
        )
        published_at = first_seen[issuer_root.public_bytes(serialization.Encoding.DER)]
        if published_at != start:  # keys after the first were published before signing
            assert clock.now() - published_at >= timedelta(seconds=900)
        generations.add(svid.leaf.issuer)
        live = [s for s in live if s.expires_at > clock.now()] + [svid]
        for s in live:
            assert _validates(s, bundle, clock), "an unexpired SVID stopped validating"
        tokens = [(t, exp) for t, exp in tokens if exp > clock.timestamp()]
        token = authority.mint_jwt_svid(WORKLOAD, "aud")
        tokens.append((token, clock.timestamp() + 300))
        for t, _ in tokens:
            assert _jwt_validates(t, bundle)
        clock.advance(timedelta(minutes=20))
    assert len(generations) >= 7  # a new CA every 12 h


# --- restart, replicas, failures -----------------------------------------------------------


def test_restart_reuses_the_same_keys(tmp_path: Path, clock: FakeClock) -> None:
    store = InMemoryAuthorityStore()
    first = Authority(TD, DiskKeyManager(tmp_path / "keys", KEK), store, clock)
    first.ensure_initialized()
    svid = first.mint_x509_svid(WORKLOAD)
    token = first.mint_jwt_svid(WORKLOAD, "aud")

    second = Authority(TD, DiskKeyManager(tmp_path / "keys", KEK), store, clock)
    assert second.ensure_initialized() == []
    assert second.bundle().x509_authorities == first.bundle().x509_authorities
    assert second.bundle().sequence == first.bundle().sequence
    assert [a.key_id for a in second.bundle().jwt_authorities] == [
        a.key_id for a in first.bundle().jwt_authorities
    ]
    assert second.authorities() == first.authorities()
    again = second.mint_x509_svid(WORKLOAD)
    assert again.leaf.issuer == svid.leaf.issuer
    assert _validates(svid, second.bundle(), clock) and _validates(again, first.bundle(), clock)
    assert jwt.get_unverified_header(second.mint_jwt_svid(WORKLOAD, "aud"))["kid"] == (
        jwt.get_unverified_header(token)["kid"]
    )


def test_missing_private_key_is_reported_and_rotation_recovers(
    make_authority: AuthorityFactory, store: InMemoryAuthorityStore, clock: FakeClock
) -> None:
    original = make_authority()
    old = original.mint_x509_svid(WORKLOAD)
    stranger = Authority(TD, MemoryKeyManager(), store, clock)
    with pytest.raises(AuthorityNotReadyError, match="no private key"):
        stranger.ensure_initialized()
    with pytest.raises(AuthorityNotReadyError, match="no private key"):
        stranger.mint_x509_svid(WORKLOAD)
    stranger.rotate()
    svid = stranger.mint_x509_svid(WORKLOAD)
    bundle = stranger.bundle()
    assert _validates(svid, bundle, clock) and _validates(old, bundle, clock)


def test_replicas_pick_up_each_others_rotation(
    key_manager: MemoryKeyManager, store: InMemoryAuthorityStore, clock: FakeClock
) -> None:
    a = Authority(TD, key_manager, store, clock)
    b = Authority(TD, key_manager, store, clock)
    a.ensure_initialized()
    b.ensure_initialized()
    assert b.authorities() == a.authorities()
    new = a.rotate("x509")[0]
    b.tick()
    assert b.active_authority("x509") == new
    assert b.bundle().sequence == a.bundle().sequence
    assert b.mint_x509_svid(WORKLOAD).leaf.issuer == a.mint_x509_svid(WORKLOAD).leaf.issuer


def test_lost_race_during_tick_is_not_an_error(
    make_authority: AuthorityFactory, store: InMemoryAuthorityStore, clock: FakeClock
) -> None:
    authority = make_authority()
    clock.advance(timedelta(hours=16))
    authority.tick()  # prepared; activation waits for the lead
    clock.advance(timedelta(hours=1))
    store.fail_next("set_state", AuthorityStateError("changed by another replica"))
    authority.tick()
    authority.tick()
    assert _states(authority, "x509") == ["old", "active"]


def test_sequence_is_bumped_before_a_key_is_published(
    make_authority: AuthorityFactory,
    store: InMemoryAuthorityStore,
    key_manager: MemoryKeyManager,
) -> None:
    authority = make_authority()
    keys = key_manager.key_ids()
    sequence = store.bundle_sequence()
    store.fail_next("add_key", RuntimeError("database went away"))
    with pytest.raises(RuntimeError):
        authority.rotate("jwt")
    assert store.bundle_sequence() == sequence + 1  # an unneeded bump, never a missing one
    assert key_manager.key_ids() == keys  # the half-made key was deleted
    assert len(authority.authorities()) == 2


def test_concurrent_minting_during_rotation(
    make_authority: AuthorityFactory, clock: FakeClock
) -> None:
    authority = make_authority()
    minted: list[MintedX509Svid] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def mint() -> None:
        while not stop.is_set():
            try:
                minted.append(authority.mint_x509_svid(WORKLOAD))
                authority.mint_jwt_svid(WORKLOAD, "aud")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    workers = [threading.Thread(target=mint) for _ in range(4)]
    for worker in workers:
        worker.start()
    for _ in range(5):
        authority.rotate()
    stop.set()
    for worker in workers:
        worker.join()
    assert errors == []
    bundle = authority.bundle()
    assert len(bundle.x509_authorities) == 6
    assert minted and all(_validates(s, bundle, clock) for s in minted)


# --- upstream CA ---------------------------------------------------------------------------


def _organisation_root(clock: FakeClock, name: str = "Corp Root") -> UpstreamCA:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = clock.now()
    root = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = root.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return UpstreamCA.from_pem(cert_pem, key_pem)


def test_upstream_mode_chains_to_the_upstream_root(
    make_authority: AuthorityFactory, clock: FakeClock
) -> None:
    upstream = _organisation_root(clock)
    authority = make_authority(upstream=upstream)
    bundle = authority.bundle()
    assert bundle.x509_authorities == (upstream.anchor,)
    svid = authority.mint_x509_svid(WORKLOAD)
    assert len(svid.chain) == 2
    intermediate = svid.chain[1]
    assert intermediate.issuer == upstream.anchor.subject
    assert _validates(svid, bundle, clock)
    record = authority.active_authority("x509")
    assert record is not None and record.upstream_chain_pem is not None
    sequence = bundle.sequence
    authority.rotate("x509")  # a new intermediate under the same root publishes nothing new
    assert authority.bundle().sequence == sequence
    assert authority.bundle().x509_authorities == (upstream.anchor,)
    assert authority.mint_x509_svid(WORKLOAD).chain[1] != intermediate
    assert _validates(svid, authority.bundle(), clock)


def test_switching_to_an_upstream_keeps_the_old_root_published(
    key_manager: MemoryKeyManager, store: InMemoryAuthorityStore, clock: FakeClock
) -> None:
    self_signed = Authority(TD, key_manager, store, clock)
    self_signed.ensure_initialized()
    old = self_signed.mint_x509_svid(WORKLOAD)
    sequence = self_signed.bundle().sequence

    upstream = _organisation_root(clock)
    switched = Authority(TD, key_manager, store, clock, upstream=upstream)
    changed = switched.ensure_initialized()
    assert {(r.kind, r.state) for r in changed} == {("x509", "active"), ("x509", "old")}
    bundle = switched.bundle()
    assert bundle.sequence > sequence
    assert upstream.anchor in bundle.x509_authorities and len(bundle.x509_authorities) == 2
    assert _validates(old, bundle, clock)
    assert _validates(switched.mint_x509_svid(WORKLOAD), bundle, clock)

    other = _organisation_root(clock, "New Corp Root")
    moved = Authority(TD, key_manager, store, clock, upstream=other)
    assert len(moved.ensure_initialized()) == 2
    assert other.anchor in moved.bundle().x509_authorities
    assert moved.mint_x509_svid(WORKLOAD).chain[1].issuer == other.anchor.subject


def test_prepared_key_of_the_former_mode_is_dropped(
    key_manager: MemoryKeyManager, store: InMemoryAuthorityStore, clock: FakeClock
) -> None:
    self_signed = Authority(TD, key_manager, store, clock)
    self_signed.ensure_initialized()
    clock.advance(timedelta(hours=12))
    prepared = next(r for r in self_signed.tick() if r.kind == "x509")
    upstream = _organisation_root(clock)
    switched = Authority(TD, key_manager, store, clock, upstream=upstream)
    changed = {r.id: r.state for r in switched.ensure_initialized()}
    assert changed[prepared.id] == "retired"
    for _ in range(12):  # two days of rotations: only upstream intermediates ever sign
        clock.advance(timedelta(hours=4))
        switched.tick()
        chain = switched.mint_x509_svid(WORKLOAD).chain
        assert chain[1].issuer == upstream.anchor.subject
        assert _validates(switched.mint_x509_svid(WORKLOAD), switched.bundle(), clock)
    assert switched.bundle().x509_authorities == (upstream.anchor,)
