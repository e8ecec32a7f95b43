"""Errors of the SPIFFE layer: one class per reason, so callers never parse messages."""

from __future__ import annotations

from tabard.errors import Invalid, Unauthenticated

__all__ = [
    "BundleError",
    "JwtSvidError",
    "SpiffeIdError",
    "SvidError",
    "X509SvidError",
]


class SpiffeIdError(Invalid):
    """A string that is not a SPIFFE ID or trust domain; the message names the rule broken."""

    code = "invalid_spiffe_id"


class BundleError(Invalid):
    """A SPIFFE bundle document that cannot be used."""

    code = "invalid_bundle"


class SvidError(Unauthenticated):
    """An SVID that does not validate. ``reason`` is a stable machine-readable word."""

    code = "invalid_svid"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class X509SvidError(SvidError):
    code = "invalid_x509_svid"


class JwtSvidError(SvidError):
    code = "invalid_jwt_svid"
