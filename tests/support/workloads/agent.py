"""An agent process: fetches its identity from the Workload API with py-spiffe, prints JSON.

Run as ``python agent.py [--fetches N [--pause S]] [--jwt-audience AUD] [--validate TOKEN AUD]
[--spawn-child]``; the socket comes from SPIFFE_ENDPOINT_SOCKET, as for any SPIFFE workload.
Every fetch opens a new connection. One JSON line on stdout; on failure ``{"error": ...,
"error_type": ...}`` and exit 3, so callers can tell a refusal from a crash.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from spiffe import WorkloadApiClient


def _pem(certs: Any) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


def fetch(fetches: int, audience: str | None, validate: list[str] | None,
          pause: float = 0.0) -> dict[str, Any]:
    result: dict[str, Any] = {"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(),
                              "spiffe_ids": []}
    for n in range(fetches):
        if n:
            time.sleep(pause)
        with WorkloadApiClient() as client:
            context = client.fetch_x509_context(timeout=20)
        svid = context.default_svid
        result["spiffe_ids"].append(str(svid.spiffe_id))
        bundle = context.x509_bundle_set.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        result.update(
            spiffe_id=str(svid.spiffe_id),
            all_spiffe_ids=sorted(str(s.spiffe_id) for s in context.x509_svids),
            serial=format(svid.leaf.serial_number, "x"),
            not_after=svid.leaf.not_valid_after_utc.isoformat(),
            chain_pem=_pem(svid.cert_chain),
            bundle_pem=_pem(bundle.x509_authorities) if bundle is not None else "",
        )
    if audience is not None:
        with WorkloadApiClient() as client:
            token = client.fetch_jwt_svid(audience={audience}, timeout=20)
        result["jwt"] = {"spiffe_id": str(token.spiffe_id), "token": token.token}
    if validate is not None:
        with WorkloadApiClient() as client:
            validated = client.validate_jwt_svid(validate[0], validate[1], timeout=20)
        result["validated"] = str(validated.spiffe_id)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fetches", type=int, default=1)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between fetches")
    parser.add_argument("--jwt-audience")
    parser.add_argument("--validate", nargs=2, metavar=("TOKEN", "AUDIENCE"),
                        help="validate a JWT-SVID through the Workload API")
    parser.add_argument("--spawn-child", action="store_true",
                        help="after fetching, run this script again as a child and embed its JSON")
    args = parser.parse_args()
    try:
        result = fetch(args.fetches, args.jwt_audience, args.validate, args.pause)
    except Exception as exc:
        print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "error": str(exc),
                          "error_type": type(exc).__name__}), flush=True)
        return 3
    if args.spawn_child:
        flags = [] if sys.flags.no_site == 0 else ["-S"]
        child = subprocess.run([sys.executable, *flags, __file__], capture_output=True,
                               text=True, timeout=60, check=False)
        lines = child.stdout.strip().splitlines()
        result["child"] = json.loads(lines[-1]) if lines else {"error": child.stderr[-2000:]}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
