"""A one-shot mTLS server for interop tests: ``python tls_peer.py SVID KEY BUNDLE``.

Listens on 127.0.0.1 (port printed on stdout), requires a client certificate chaining to
BUNDLE, prints the client's URI SAN (or the handshake error) as one JSON line and exits.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys


def main(svid: str, key: str, bundle: str) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(svid, key)
    context.load_verify_locations(bundle)
    context.verify_mode = ssl.CERT_REQUIRED
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(20)
        print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
        raw, _ = listener.accept()
        try:
            with context.wrap_socket(raw, server_side=True) as conn:
                peer = conn.getpeercert() or {}
                uris = [v for k, v in peer.get("subjectAltName", ()) if k == "URI"]
                conn.sendall(b"hello")
                print(json.dumps({"ok": True, "peer_uris": uris}), flush=True)
        except (ssl.SSLError, OSError) as exc:
            print(json.dumps({"ok": False, "error": type(exc).__name__,
                              "reason": getattr(exc, "reason", str(exc))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
