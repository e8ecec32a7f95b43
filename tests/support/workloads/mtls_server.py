"""A workload serving mutual TLS with the X509-SVID it fetched from the Workload API.

``python mtls_server.py --allow-prefix spiffe://td/agent/trading/ --connections N``: prints
``{"port", "spiffe_id"}``, then one JSON line per connection: ``{"event": "accepted",
"client", "authorized"}`` or ``{"event": "refused", "error"}``; it answers an authorized
client with ``{"server", "client"}`` and exits after N connections or ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys

from spiffe import X509Source
from tls_common import peer_spiffe_id, svid_context


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--allow-prefix", required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    with X509Source(timeout_in_seconds=20) as source:
        me = str(source.get_x509_context().default_svid.spiffe_id)
        context = svid_context(source, ssl.Purpose.CLIENT_AUTH)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(args.timeout)
            print(json.dumps({"port": listener.getsockname()[1], "spiffe_id": me}), flush=True)
            for _ in range(args.connections):
                raw, _addr = listener.accept()
                raw.settimeout(10)
                try:
                    conn = context.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    raw.close()
                    print(json.dumps({"event": "refused", "error": str(exc)}), flush=True)
                    continue
                with conn:
                    client = peer_spiffe_id(conn)
                    authorized = client is not None and client.startswith(args.allow_prefix)
                    if authorized:
                        conn.sendall(json.dumps({"server": me, "client": client}).encode())
                    print(json.dumps({"event": "accepted", "client": client,
                                      "authorized": authorized}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
