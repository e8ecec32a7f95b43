"""The node's persistent state in its data dir, so a restart needs no new join token.

Files (the directory is created 0700; every write is atomic: temp file, fsync, rename):
``node.json`` (node ID, SPIFFE ID, trust domain, issue and expiry times), ``node-svid.pem``
(the chain, leaf first), ``node-key.pem`` (PKCS#8, mode 0600) and ``bundle.json`` (the trust
domain's bundle as last received: the trust anchor for the node API after a restart).
Workload SVIDs are never written to disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.authority.keymanager.base import PrivateKey
from tabard.node.errors import NodeConfigError
from tabard.node.ports import NodeCredentials
from tabard.spiffe import Bundle, BundleError, SpiffeId, SpiffeIdError, TrustDomain

__all__ = ["NodeStateStore", "StoredNode"]


@dataclass(frozen=True)
class StoredNode:
    credentials: NodeCredentials
    key: PrivateKey
    issued_at: datetime


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class NodeStateStore:
    """Load and save the node SVID, its key and the bundle under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    @property
    def _meta(self) -> Path:
        return self.data_dir / "node.json"

    @property
    def _svid(self) -> Path:
        return self.data_dir / "node-svid.pem"

    @property
    def _key(self) -> Path:
        return self.data_dir / "node-key.pem"

    @property
    def _bundle(self) -> Path:
        return self.data_dir / "bundle.json"

    def _ensure_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def load(self) -> StoredNode | None:
        """The saved node identity, or None when there is none (a first start)."""
        if not self._meta.exists():
            return None
        try:
            meta = json.loads(self._meta.read_text())
            trust_domain = TrustDomain.parse(meta["trust_domain"])
            chain = tuple(x509.load_pem_x509_certificates(self._svid.read_bytes()))
            key = serialization.load_pem_private_key(self._key.read_bytes(), password=None)
            bundle = Bundle.parse(trust_domain, self._bundle.read_bytes())
            credentials = NodeCredentials(
                node_id=meta["node_id"],
                spiffe_id=SpiffeId.parse(meta["spiffe_id"]),
                chain=chain,
                expires_at=datetime.fromisoformat(meta["expires_at"]),
                bundle=bundle,
            )
            issued_at = datetime.fromisoformat(meta["issued_at"])
        except (OSError, ValueError, KeyError, TypeError, BundleError, SpiffeIdError) as exc:
            raise NodeConfigError(
                f"the node state in {self.data_dir} is unreadable ({type(exc).__name__}); "
                "remove it and attest again with a new join token"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise NodeConfigError(f"{self._key}: unsupported key type")
        return StoredNode(credentials, key, issued_at)

    def save(self, credentials: NodeCredentials, key: PrivateKey, issued_at: datetime) -> None:
        self._ensure_dir()
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_atomic(self._key, key_pem, 0o600)
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in credentials.chain)
        _write_atomic(self._svid, chain_pem, 0o644)
        self.save_bundle(credentials.bundle)
        meta = {
            "node_id": credentials.node_id,
            "spiffe_id": str(credentials.spiffe_id),
            "trust_domain": credentials.spiffe_id.trust_domain.name,
            "expires_at": credentials.expires_at.isoformat(),
            "issued_at": issued_at.isoformat(),
        }
        _write_atomic(self._meta, json.dumps(meta, indent=2).encode(), 0o644)

    def save_bundle(self, bundle: Bundle) -> None:
        self._ensure_dir()
        _write_atomic(self._bundle, bundle.to_json(), 0o644)

    def load_bundle(self, trust_domain: TrustDomain) -> Bundle | None:
        """The last bundle saved, used as the pinned trust anchor on restart."""
        try:
            return Bundle.parse(trust_domain, self._bundle.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, BundleError) as exc:
            raise NodeConfigError(f"{self._bundle} is unreadable: {exc}") from exc

    def saved_trust_domain(self) -> TrustDomain | None:
        try:
            meta = json.loads(self._meta.read_text())
            return TrustDomain.parse(meta["trust_domain"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, SpiffeIdError) as exc:
            raise NodeConfigError(f"{self._meta} is unreadable") from exc
