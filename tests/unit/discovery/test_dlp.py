"""DLP: each detector on planted values, silence on benign text, Luhn, JSON that stays
JSON, chunk boundaries that hide nothing, SSE event by event, block with counts only."""

from __future__ import annotations

import json
import random
import re
from re import _parser as sre_parse  # type: ignore[attr-defined]

import pytest

from tabard.discovery.dlp import (
    DETECTORS,
    MAX_MATCH,
    PROFILES,
    DlpAction,
    DlpBlockedError,
    DlpProfile,
    DlpScanner,
    SseScanner,
    StreamScanner,
    luhn_valid,
)

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6ImEifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = ("-----BEGIN EC PRIVATE KEY-----\n"
       "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49"
       "\nAwEHoUQDQgAEPR3tU2Fta9ktY+6P9G0cWO+0kETA6SQr+m+TtmbXV0Lgr/HGg3w4\n"
       "-----END EC PRIVATE KEY-----")
PLANTED = {
    "private_key": PEM,
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "gcp_api_key": "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "azure_connection_string": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey="
                               + "Zm9vYmFy" * 11 + "==;EndpointSuffix=core.windows.net",
    "anthropic_api_key": "sk-ant-api03-" + "Ab3_" * 20,
    "openai_api_key": "sk-proj-" + "x9Y8" * 12,
    "github_token": "ghp_" + "a1B2" * 9,
    "gitlab_token": "glpat-" + "Zx9_" * 5,
    "slack_token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKl",
    "jwt": JWT,
    "connection_string": "postgresql://svc_user:pa55w0rd!@db.internal.example:5432/app",
    "email": "alice.smith+news@mail.example.co.uk",
    "payment_card": "4111 1111 1111 1111",
    "phone": "+1 415 555 0100",
}
BENIGN = (
    "Release 2.14.3 shipped on 2026-01-15 at 10:32:07Z to 10.0.12.7 and 192.168.100.200. "
    "Order #12345 cost $1,299.99; invoice INV-2026-000123; build 8f14e45fceea167a5a36dedd4bea2543"
    " (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08). "
    "uuid 123e4567-e89b-12d3-a456-426614174000, see https://docs.example.org/a/b?c=d#e. "
    "The task-id is sk-short, ticket ABC-1234, pages 12-15, ratio 3.14159265358979, "
    "user@ mention, a@b, timestamp 1767225600123 and epoch 1767225600."
)


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_each_detector_finds_and_redacts_its_planted_value(kind: str) -> None:
    value = PLANTED[kind]
    text, findings = DlpScanner().scan_text(f"before {value} after")
    assert findings.as_dict() == {kind: 1}
    assert text == f"before [REDACTED:{kind}] after"
    assert value not in text


def test_benign_text_has_no_findings() -> None:
    text, findings = DlpScanner().scan_text(BENIGN)
    assert findings.total == 0 and text == BENIGN


def test_random_sixteen_digit_numbers_failing_luhn_are_never_cards() -> None:
    rng = random.Random(7)
    scanner = DlpScanner(DlpProfile("cards", kinds=frozenset({"payment_card"})))
    tried = 0
    while tried < 2000:
        number = "4" + "".join(rng.choice("0123456789") for _ in range(15))
        if luhn_valid(number):
            continue
        tried += 1
        spaced = " ".join(number[i:i + 4] for i in range(0, 16, 4))
        assert scanner.scan_text(f"id {number} or {spaced}.")[1].total == 0, number
    valid = [n for n in ("4111111111111111", "5555555555554444", "378282246310005",
                         "6011111111111117", "3530111333300000")]
    for number in valid:
        assert scanner.scan_text(f"card: {number}")[1].as_dict() == {"payment_card": 1}
    assert scanner.scan_text("4111 1111 1111 1111 1234")[0] == "[REDACTED:payment_card] 1234"


def test_phone_formats_and_near_misses() -> None:
    scanner = DlpScanner(DlpProfile("phones", kinds=frozenset({"phone"})))
    for number in ("+14155550100", "+44 20 7946 0958", "(415) 555-0100", "415-555-0100",
                   "415.555.0100", "01 23 45 67 89", "020 7946 0958"):
        assert scanner.scan_text(f"call {number} now")[1].as_dict() == {"phone": 1}, number
    for text in ("v415-555-0100", "415-555.0100", "2026-01-15", "1.415.555.01000", "+1234"):
        assert scanner.scan_text(text)[1].total == 0, text


def test_every_detector_match_is_bounded_by_max_match() -> None:
    for detector in DETECTORS:
        _low, high = sre_parse.parse(detector.pattern).getwidth()
        assert high <= MAX_MATCH - 64, detector.kind  # 64: what refine may widen backwards


def test_block_counts_kinds_and_never_names_values() -> None:
    scanner = DlpScanner(PROFILES["block"])
    with pytest.raises(DlpBlockedError) as caught:
        scanner.scan_text(f"{PLANTED['jwt']} and {PLANTED['email']} and {PLANTED['email']}")
    assert caught.value.counts == {"email": 2, "jwt": 1}
    assert PLANTED["email"] not in str(caught.value) and "email ×2" in str(caught.value)
    assert DlpScanner(PROFILES["block-secrets"]).scan_text(PLANTED["email"])[1].total == 0
    assert PROFILES["block"].action is DlpAction.BLOCK


def test_json_stays_valid_json_with_values_redacted() -> None:
    document = {
        "jsonrpc": "2.0", "id": 7,
        "result": {"content": [{"type": "text", "text": f"token:\n{PLANTED['github_token']}"
                                                        f"\nmail {PLANTED['email']}"}],
                   "card": 4111111111111111, "price": 12.5, "quote": 'a "quoted" word',
                   PLANTED["aws_access_key_id"]: "key as key"},
    }
    for body in (json.dumps(document), json.dumps(document, ensure_ascii=True, indent=2),
                 json.dumps(document).replace("@", "\\u0040")):
        out, findings = DlpScanner().scan_json(body.encode())
        parsed = json.loads(out)
        assert findings.as_dict() == {"aws_access_key_id": 1, "email": 1, "github_token": 1,
                                      "payment_card": 1}
        text = parsed["result"]["content"][0]["text"]
        assert text == "token:\n[REDACTED:github_token]\nmail [REDACTED:email]"
        assert parsed["result"]["card"] == "[REDACTED:payment_card]"
        assert parsed["result"]["quote"] == 'a "quoted" word' and parsed["id"] == 7
        assert "[REDACTED:aws_access_key_id]" in parsed["result"]
    clean = json.dumps({"a": BENIGN}).encode()
    assert DlpScanner().scan_json(clean) == (clean, DlpScanner().scan_json(clean)[1])
    assert DlpScanner().scan_json(b"not json " + PLANTED["jwt"].encode())[0] == (
        b"not json [REDACTED:jwt]")


def _mixed_body(rng: random.Random) -> str:
    parts = []
    for i in range(60):
        parts.append(BENIGN[: rng.randrange(20, len(BENIGN))])
        if i % 4 == 0:
            parts.append(rng.choice(sorted(PLANTED.values())))
    return " ".join(parts)


@pytest.mark.parametrize("seed", range(6))
def test_chunk_boundaries_never_let_a_secret_through(seed: int) -> None:
    rng = random.Random(seed)
    body = _mixed_body(rng)
    expected, whole = DlpScanner().scan_text(body)
    data = body.encode()
    stream = StreamScanner(DlpScanner(), hold=MAX_MATCH)
    out, position = [], 0
    while position < len(data):
        size = rng.choice([1, 2, 7, 64, 1000, 30_000])
        out.append(stream.feed(data[position:position + size]))
        position += size
    out.append(stream.finish())
    assert b"".join(out).decode() == expected
    assert stream.findings.as_dict() == whole.as_dict() and whole.total >= 10
    for value in PLANTED.values():
        assert value.encode() not in b"".join(out)


def test_stream_keeps_multibyte_characters_and_emits_early() -> None:
    stream = StreamScanner(DlpScanner(), hold=MAX_MATCH)
    data = ("é€" * 40_000).encode() + PLANTED["jwt"].encode()
    first = stream.feed(data[:100_001])  # cuts a multi-byte character
    assert first and len(first) < 100_001
    rest = stream.feed(data[100_001:]) + stream.finish()
    assert (first + rest).decode() == "é€" * 40_000 + "[REDACTED:jwt]"


def _events(raw: bytes) -> list[dict[str, str]]:
    events = []
    for block in re.split(rb"\n\n", raw.strip(b"\n")):
        fields: dict[str, str] = {}
        for line in block.split(b"\n"):
            name, _, value = line.decode().partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = fields[name] + "\n" + value if name in fields else value
        events.append(fields)
    return events


def test_sse_events_scanned_one_by_one_and_reemitted_as_sse() -> None:
    message = {"jsonrpc": "2.0", "id": 1,
               "result": {"content": [{"type": "text", "text": PLANTED["payment_card"]}]}}
    stream = (b": keep-alive\n\n"
              b"event: message\nid: 41\ndata: " + json.dumps(message).encode() + b"\n\n"
              b"id: 42\ndata: first line " + PLANTED["openai_api_key"].encode() + b"\r\n"
              b"data: second " + PLANTED["email"].encode() + b" ok\r\n\r\n"
              b"data: nothing to see\n\n")
    for size in (1, 5, 17, len(stream)):
        sse = SseScanner(DlpScanner())
        out = b"".join(sse.feed(stream[i:i + size]) for i in range(0, len(stream), size))
        out += sse.finish()
        events = _events(out)
        assert events[0] == {"": "keep-alive"}
        assert events[1]["event"] == "message" and events[1]["id"] == "41"
        parsed = json.loads(events[1]["data"])
        assert parsed["result"]["content"][0]["text"] == "[REDACTED:payment_card]"
        assert events[2] == {"id": "42", "data": "first line [REDACTED:openai_api_key]\n"
                                                 "second [REDACTED:email] ok"}
        assert events[3] == {"data": "nothing to see"}
        assert sse.findings.as_dict() == {"email": 1, "openai_api_key": 1, "payment_card": 1}
    blocking = SseScanner(DlpScanner(PROFILES["block"]))
    assert blocking.feed(b"data: fine\n\n") == b"data: fine\n\n"
    with pytest.raises(DlpBlockedError):
        blocking.feed(b"data: " + PLANTED["jwt"].encode() + b"\n\n")


def _chunk_event(text: str, n: int) -> bytes:
    message = {"jsonrpc": "2.0", "id": 7, "result": {"artifactUpdate": {
        "taskId": "t", "append": n > 0, "artifact": {"parts": [{"text": text}]}}}}
    return b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"


def _texts(out: bytes) -> list[str]:
    return [json.loads(e["data"])["result"]["artifactUpdate"]["artifact"]["parts"][0]["text"]
            for e in _events(out) if "data" in e]


@pytest.mark.parametrize("kind", sorted(k for k in PLANTED if k not in ("private_key",)))
@pytest.mark.parametrize("parts", [2, 3])
def test_a_finding_split_across_events_is_redacted_in_every_part(kind: str,
                                                                 parts: int) -> None:
    """What a client joins again (appended artifact text) is scanned across events: no
    event carries the finding's characters beyond the first few of its start."""
    secret = PLANTED[kind]
    text = f"here it is: {secret} and more"
    at = text.index(secret)
    cuts = [at + len(secret) * k // parts for k in range(1, parts)]
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    sse = SseScanner(DlpScanner())
    out = b"".join(sse.feed(_chunk_event(piece, n)) for n, piece in enumerate(pieces))
    out += sse.finish()
    texts = _texts(out)
    assert len(texts) == parts  # every event is still there, in order
    [(start, end, found)] = DlpScanner()._matches(text)  # what a scan of it all redacts
    assert found == kind
    joined, placeholder = "".join(texts), f"[REDACTED:{kind}]"
    before, after = text[:start], placeholder + text[end:]
    assert joined.startswith(before) and joined.endswith(after), joined
    leaked = joined[len(before):len(joined) - len(after)]
    assert leaked == text[start:start + len(leaked)]
    if kind == "email":  # a local part can leave before its "@" arrives, never after it
        assert "@" not in leaked
    else:
        assert len(leaked) < 8  # at most hold_min - 1 characters of its start
    assert sse.findings.counts[kind] == 1


def test_clean_events_leave_at_once_and_a_held_one_with_the_next() -> None:
    sse = SseScanner(DlpScanner())
    assert _texts(sse.feed(_chunk_event("hello there", 0))) == ["hello there"]
    assert sse.feed(_chunk_event("token eyJhbGciOiJIUzI1", 1)) == b""  # could be a JWT
    assert sse.feed(b": keep-alive\n\n") == b""  # stays behind the held event
    out = sse.feed(_chunk_event(" is not one", 2))
    assert _texts(out) == ["token eyJhbGciOiJIUzI1", " is not one"]
    assert b": keep-alive" in out
    assert sse.feed(_chunk_event("price 2", 3)) != b""  # a short partial match is not held
    assert sse.finish() == b"" and not sse.findings.total


def test_a_split_finding_blocks_the_stream_before_its_start_leaves() -> None:
    sse = SseScanner(DlpScanner(PROFILES["block"]))
    secret = PLANTED["github_token"]
    assert sse.feed(_chunk_event("key " + secret[:20], 0)) == b""
    with pytest.raises(DlpBlockedError):
        sse.feed(_chunk_event(secret[20:], 1))


def test_the_held_event_leaves_at_the_end_of_the_stream() -> None:
    sse = SseScanner(DlpScanner())
    assert sse.feed(b"data: AKIAIOSFODNN7EX\n\n") == b""
    assert sse.finish() == b"data: AKIAIOSFODNN7EX\n\n"  # no finding: it was not one
