"""A long-running agent: follows its X509 context over one Workload API stream (py-spiffe
``stream_x509_contexts``, no reconnect) and prints one JSON line per update or error, with
the wall-clock time, until the stream ends; then exits (0)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from spiffe import WorkloadApiClient


def main() -> int:
    done = threading.Event()

    def emit(value: dict[str, Any]) -> None:
        print(json.dumps({"t": time.time(), **value}), flush=True)

    def on_success(context: Any) -> None:
        emit({"spiffe_id": str(context.default_svid.spiffe_id)})

    def on_error(exc: Exception) -> None:
        emit({"error": str(exc), "error_type": type(exc).__name__})
        done.set()

    with WorkloadApiClient() as client:
        handle = client.stream_x509_contexts(on_success, on_error, retry_connect=False)
        done.wait(300)
        handle.cancel()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
