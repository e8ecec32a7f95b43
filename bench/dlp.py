"""DLP scanner throughput on a 1 MB mixed JSON body (issue 6).

The body is a JSON-RPC ``tools/call`` result holding 2,000 records of ordinary text,
numbers and URLs with a secret or a personal datum planted in one record in 40. Figures are
MB/s of the body, each beside the same baseline measured in the same rounds: one bare
``re.search`` pass over the body for a literal-prefixed pattern that never matches, the
cheapest whole-body regex scan Python does. The ratio says how many such passes one
DLP scan costs.
"""

from __future__ import annotations

import json
import random
import re

from bench.harness import Figure, compare_rates
from tabard.discovery.dlp import MAX_MATCH, DlpScanner, SseScanner, StreamScanner

_PLANTS = (
    "ghp_" + "a1B2" * 9, "AKIAIOSFODNN7EXAMPLE", "alice@example.com", "4111 1111 1111 1111",
    "+1 415 555 0100", "postgresql://svc:pa55@db.example/app",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
)


def mixed_body(size: int = 1 << 20) -> bytes:
    rng = random.Random(6)
    records = []
    i = 0
    while sum(len(json.dumps(r)) for r in records) < size - 200:
        text = " ".join(rng.choice(("deploy", "ticket", "the", "build", "passed", "on",
                                    "2026-01-15", "v2.14.3", "10.0.0.7", "ok", "retry"))
                        for _ in range(30))
        if i % 40 == 0:
            text += " " + _PLANTS[(i // 40) % len(_PLANTS)]
        records.append({"id": i, "title": f"item {i}", "text": text,
                        "score": rng.random(), "url": f"https://example.org/items/{i}"})
        i += 1
    message = {"jsonrpc": "2.0", "id": 1, "result": {"content": [
        {"type": "text", "text": json.dumps(records)}], "records": records}}
    return json.dumps(message).encode()


def run() -> list[Figure]:
    body = mixed_body()
    text = body.decode()
    scanner = DlpScanner()
    megabytes = len(body) / 1e6
    bare = re.compile(r"ZQXJ_NEVER_[A-Z]{8}")

    def baseline() -> object:
        return bare.search(text)

    def chunked() -> object:
        stream = StreamScanner(scanner, hold=MAX_MATCH)
        for i in range(0, len(body), 65536):
            stream.feed(body[i:i + 65536])
        return stream.finish()

    sse_body = b"".join(b"data: " + json.dumps({"n": i, "text": text[i * 4096:(i + 1) * 4096]}
                                                ).encode() + b"\n\n"
                        for i in range(len(text) // 4096 + 1))

    def sse() -> object:
        s = SseScanner(scanner)
        return s.feed(sse_body) + s.finish()

    _, findings = scanner.scan_json(body)
    figures = []
    for name, fn in (("DLP scan_json, 1 MB mixed JSON", lambda: scanner.scan_json(body)),
                     ("DLP scan_text, same body", lambda: scanner.scan_text(text)),
                     ("DLP stream, 64 KiB chunks", chunked),
                     ("DLP SSE, 4 KiB events", sse)):
        subject_rate, baseline_rate = compare_rates(fn, baseline, rounds=3, seconds=0.5)
        figures.append(Figure(
            name=name, value=subject_rate * megabytes, unit="MB/s",
            baseline_name="bare re.search pass", baseline=baseline_rate * megabytes,
            goal="reported", notes=[f"{len(body):,} bytes, {findings.total} findings "
                                    f"({', '.join(sorted(findings.counts))})"]
            if name.startswith("DLP scan_json") else []))
    return figures
