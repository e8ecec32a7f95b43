"""Every deliberate departure of ``tabard.spiffe`` from the specifications it implements.

Each entry names the spec text (as digested in STANDARDS.md), what tabard does instead, and
why. ``tests/conformance/test_deviations.py`` holds one test per entry, named
``test_<id>``, that pins the behaviour; a meta-test fails when an entry has no test.
"Stricter" entries reject what the spec allows validators to accept; "laxer" entries accept
what a stricter reading would reject; "unsupported" entries are features left out.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEVIATIONS", "Deviation"]


@dataclass(frozen=True)
class Deviation:
    id: str
    spec: str
    kind: str  # "stricter" | "laxer" | "unsupported"
    rule: str
    behaviour: str
    reason: str


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        id="uppercase_scheme_rejected",
        spec="SPIFFE-ID §1.5",
        kind="stricter",
        rule="Scheme and trust domain are case-insensitive.",
        behaviour="Only the exact prefix 'spiffe://' and a lowercase trust domain parse.",
        reason="One canonical form lets IDs compare byte for byte; same as go-spiffe "
        "(STANDARDS [IMPL NOTE]).",
    ),
    Deviation(
        id="jwt_kid_required",
        spec="JWT-SVID §3.2",
        kind="stricter",
        rule="'kid' is optional in the JOSE header.",
        behaviour="A JWT-SVID without a non-empty string 'kid' fails with reason missing_kid.",
        reason="Bundles always publish JWT keys by kid; without it the validator would have to "
        "try every key. The SPIFFE reference library (go-spiffe) rejects it too.",
    ),
    Deviation(
        id="jwt_extra_header_rejected",
        spec="JWT-SVID §3.2, §3.4 step 1",
        kind="stricter",
        rule="Issuers must not add header parameters besides alg/kid/typ; validators are not "
        "told to reject them.",
        behaviour="Any other header parameter (crit, jku, x5u, jwk, x5c, cty, ...) fails with "
        "reason forbidden_header.",
        reason="jku/x5u/jwk/x5c are key-injection vectors and crit cannot be honoured; a "
        "conforming issuer never sends the rest, so nothing valid is lost.",
    ),
    Deviation(
        id="jwt_duplicate_header_member_rejected",
        spec="RFC 7515 §5.2",
        kind="stricter",
        rule="Either reject duplicate header member names or keep the lexically last one.",
        behaviour="Duplicates in the JOSE header are malformed; in the claims set the last "
        "member wins (the other permitted choice), see the jwtsvid module.",
        reason="The header decides the algorithm and key; the claims check is left to the "
        "parser because a per-object hook costs a measurable share of each validation.",
    ),
    Deviation(
        id="x509_leaf_digital_signature_required",
        spec="X509-SVID §2.5 step 6",
        kind="stricter",
        rule="Validation only forbids keyCertSign/cRLSign on the leaf.",
        behaviour="A leaf without keyUsage, or without digitalSignature, fails with reason "
        "bad_key_usage.",
        reason="Issuance requires both (§2.2) and the OAuth SPIFFE client-auth draft checks "
        "digitalSignature; a TLS key that may not sign cannot prove possession anyway.",
    ),
    Deviation(
        id="x509_eku_not_enforced",
        spec="X509-SVID §2.2, §2.3",
        kind="laxer",
        rule="Leaf EKU should be present and include serverAuth and clientAuth.",
        behaviour="Neither leaf nor CA extendedKeyUsage is checked during validation.",
        reason="Validation in go-spiffe allows any EKU, and the spec warns that EKU handling "
        "on intermediates varies; the Web PKI client policy would otherwise demand clientAuth.",
    ),
    Deviation(
        id="x509_leaf_aki_optional",
        spec="RFC 5280 §4.2.1.1 (Web PKI profile)",
        kind="laxer",
        rule="The Web PKI profile of the path validator requires an authorityKeyIdentifier "
        "on end-entity certificates.",
        behaviour="A leaf without AKI validates; chain building then matches on names.",
        reason="The SPIFFE profile does not require AKI and other issuers omit it.",
    ),
    Deviation(
        id="x509_leaf_key_usage_criticality_not_checked",
        spec="X509-SVID §2.2",
        kind="laxer",
        rule="The leaf keyUsage extension must be critical.",
        behaviour="A non-critical keyUsage with the right bits validates.",
        reason="An issuance rule, not a step of the §2.5 validation algorithm; go-spiffe "
        "does not check it either.",
    ),
    Deviation(
        id="x509_uri_name_constraints_unsupported",
        spec="X509-SVID §2.4",
        kind="unsupported",
        rule="Signing certificates may carry URI permittedSubtrees.",
        behaviour="A chain through a CA with URI name constraints fails with reason "
        "invalid_chain.",
        reason="cryptography's path validator does not implement URI constraints and fails "
        "closed; the spec notes that TLS stacks commonly do the same. Trust-domain "
        "confinement comes from per-trust-domain bundle selection instead.",
    ),
    Deviation(
        id="x509_web_pki_profile_rules",
        spec="X509-SVID §2.5 step 5 (RFC 5280)",
        kind="stricter",
        rule="Plain RFC 5280 path validation.",
        behaviour="The Web PKI profile of cryptography's verifier also applies: RSA keys of "
        "at least 2048 bits, EC on P-256/384/521, SHA-2 signatures, a non-empty issuer, "
        "critical basicConstraints and keyUsage with keyCertSign on CAs, chains of at most "
        "8 certificates.",
        reason="Keeps one audited native path validator on the hot path; SPIFFE issuers "
        "(including tabard's authority, §2.7) produce certificates inside these rules.",
    ),
    Deviation(
        id="jwt_es512_means_p521",
        spec="JWT-SVID §3.2 / RFC 7518 §3.4",
        kind="stricter",
        rule="alg names a signature algorithm.",
        behaviour="ES256/384/512 must be signed by a P-256/P-384/P-521 key and RS*/PS* by an "
        "RSA key; anything else fails with reason alg_not_allowed before any crypto.",
        reason="RFC 7518 ties each ES* to one curve; checking the key type first is what "
        "defeats algorithm-confusion attacks.",
    ),
)
