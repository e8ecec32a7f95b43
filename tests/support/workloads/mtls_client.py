"""A workload calling an mTLS server with the X509-SVID it fetched from the Workload API.

``python mtls_client.py --port P --expect-server SPIFFE_ID [--no-svid]``: checks the server's
SPIFFE ID, prints ``{"client", "server", "reply"}``; on failure ``{"error"}`` and exit 3.
``--no-svid`` still trusts the bundle but presents no certificate.
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
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--expect-server", required=True)
    parser.add_argument("--no-svid", action="store_true")
    args = parser.parse_args()
    with X509Source(timeout_in_seconds=20) as source:
        me = str(source.get_x509_context().default_svid.spiffe_id)
        context = svid_context(source, ssl.Purpose.SERVER_AUTH, present_svid=not args.no_svid)
    try:
        with socket.create_connection(("127.0.0.1", args.port), timeout=10) as raw, \
                context.wrap_socket(raw) as conn:
            server = peer_spiffe_id(conn)
            if server != args.expect_server:
                raise ssl.SSLError(f"unexpected server SPIFFE ID {server}")
            reply = conn.recv(65536).decode()
            if not reply:
                raise ConnectionError("the server closed the connection without answering")
    except (OSError, ssl.SSLError) as exc:
        print(json.dumps({"client": me, "error": str(exc)}), flush=True)
        return 3
    print(json.dumps({"client": me, "server": server, "reply": json.loads(reply)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
