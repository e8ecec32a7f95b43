"""TLS contexts from an X509-SVID and bundle fetched through py-spiffe (shared by mtls_*.py)."""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from spiffe import X509Source


def peer_spiffe_id(conn: ssl.SSLSocket) -> str | None:
    """The URI SAN of the verified peer certificate (an X509-SVID has exactly one)."""
    cert: Any = conn.getpeercert()
    uris = [value for kind, value in (cert or {}).get("subjectAltName", ()) if kind == "URI"]
    return uris[0] if len(uris) == 1 else None


def svid_context(source: X509Source, purpose: ssl.Purpose, *, present_svid: bool = True
                 ) -> ssl.SSLContext:
    """Trust the trust domain's X.509 authorities; present the source's SVID.

    Hostnames are not checked: an X509-SVID is authorized by its SPIFFE ID, which the
    caller checks after the handshake.
    """
    svid = source.get_x509_context().default_svid
    bundle = source.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
    if bundle is None:
        raise RuntimeError("the Workload API sent no bundle for our own trust domain")
    context = ssl.create_default_context(purpose)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata="".join(
        a.public_bytes(Encoding.PEM).decode() for a in bundle.x509_authorities))
    if present_svid:
        # ssl loads a key only from files: write them in a private directory, then remove it
        with tempfile.TemporaryDirectory() as private:
            os.chmod(private, 0o700)
            chain = os.path.join(private, "svid.pem")
            key = os.path.join(private, "svid.key")
            with open(chain, "w") as fh:
                fh.write("".join(c.public_bytes(Encoding.PEM).decode() for c in svid.cert_chain))
            fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(svid.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                        NoEncryption()))
            context.load_cert_chain(chain, key)
    return context
