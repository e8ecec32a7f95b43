"""Data-loss prevention for response bodies: secrets and personal data, redacted or blocked.

The gateway scans what an upstream answers before it reaches the agent. A
:class:`DlpProfile` names the kinds it looks for and its action: ``redact`` replaces each
finding with ``[REDACTED:<kind>]``, ``block`` refuses the whole answer
(:class:`DlpBlockedError`). Findings are counted per kind (:class:`Findings`); their values
are never kept, returned or logged.

Four ways in, one detector table:

- :meth:`DlpScanner.scan_text` for a whole text body;
- :meth:`DlpScanner.scan_json` for a JSON body: strings (and keys, and numbers that are card
  numbers) are scanned after JSON decoding, so ``\\u0040`` escapes hide nothing, and the
  redacted body is valid JSON again;
- :class:`StreamScanner` for chunked bodies: a bounded tail (longer than the longest match
  any detector can make) is held back until the next chunk, so a secret cut in two by a
  chunk boundary is still seen whole;
- :class:`SseScanner` for ``text/event-stream``: each event's ``data:`` lines are joined
  (as an SSE client would), scanned (as JSON when they are JSON), and the event re-emitted
  as valid SSE, event by event; a finding split across events (streamed text a client
  appends) is seen through a bounded tail carried from one event to the next, and an event
  is held back only while it ends in the start of one (partial matching from the
  ``regex`` module, which ``re`` lacks).

The detector table is written here by hand: the Python secret scanners are line-oriented
tools for repositories (they report lines of files, not spans to rewrite in a stream), and
the personal-data ones rely on NER models; none scans in-process chunked or SSE bodies.
Every pattern has bounded repetition so that :data:`MAX_MATCH` bounds the held-back tail.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tabard.errors import Denied, Invalid

__all__ = [
    "DETECTORS",
    "MAX_MATCH",
    "PERSONAL_KINDS",
    "PROFILES",
    "SECRET_KINDS",
    "DlpAction",
    "DlpBlockedError",
    "DlpProfile",
    "DlpScanner",
    "Findings",
    "SseEventTooLargeError",
    "SseScanner",
    "StreamScanner",
    "luhn_valid",
]


class DlpAction(StrEnum):
    REDACT = "redact"
    BLOCK = "block"


class DlpBlockedError(Denied):
    """A body held data the route's profile blocks. Carries counts per kind, no values."""

    code = "dlp_blocked"

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = dict(counts)
        kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(self.counts.items()))
        super().__init__(f"the response was blocked by data-loss prevention ({kinds})")


class SseEventTooLargeError(Invalid):
    code = "sse_event_too_large"


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_CARD_PREFIX = re.compile(
    r"4|5[1-5]|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)|3[47]|3(?:0[0-5]|[68])|"
    r"6(?:011|5|4[4-9]|2)|35(?:2[89]|[3-8])")
_Span = tuple[int, int]
Refine = Callable[[str, "re.Match[str]"], "_Span | None"]


def _boundary(text: str, s: int, chars: str) -> bool:
    """Whether a finding may start at ``s``: no word character (nor one of ``chars``) right
    before it; a JSON escape such as ``\n`` before it counts as a boundary."""
    if s == 0:
        return True
    c = text[s - 1]
    if not (c.isalnum() or c in chars):
        return True
    return c in "ntrbf" and s >= 2 and text[s - 2] == "\\"


def _not_before(chars: str) -> Refine:
    def refine(text: str, m: re.Match[str]) -> _Span | None:
        return m.span() if _boundary(text, m.start(), chars) else None
    return refine


def _card(text: str, m: re.Match[str]) -> _Span | None:
    """13-19 digits (spaces or dashes between) with a card-network prefix and a valid Luhn
    check. The run the pattern found may hold more (``3.14 4111 1111 1111 1111``): every
    group start is tried, and from it the longest prefix that ends where a group ends."""
    run, base = m.group(), m.start()
    starts = [0] + [i + 1 for i, c in enumerate(run) if c in " -"]
    for first in starts:
        s = base + first
        if not _boundary(text, s, ".-") or (s and text[s - 1].isdigit()):
            continue
        for end in range(len(run), first, -1):
            if not run[end - 1].isdigit() or (end < len(run) and run[end].isdigit()):
                continue
            candidate = run[first:end]
            if "  " in candidate or "--" in candidate or " -" in candidate or "- " in candidate:
                continue
            digits = candidate.replace(" ", "").replace("-", "")
            if len(digits) < 13:
                break
            if len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn_valid(digits):
                after = base + end
                if after < len(text) and text[after].isdigit():
                    break
                return s, after
    return None


def _phone_span(text: str, s: int, e: int) -> _Span | None:
    if not _boundary(text, s, "+.-_") or (s and text[s - 1].isdigit()):
        return None
    if e < len(text) and (text[e].isalnum() or text[e] in "_"):
        return None
    if text[e:e + 1] in (".", "-") and text[e + 1:e + 2].isdigit():
        return None
    digits = sum(c.isdigit() for c in text[s:e])
    return (s, e) if 8 <= digits <= 15 else None


def _phone(text: str, m: re.Match[str]) -> _Span | None:
    return _phone_span(text, *m.span())


def _phone_dotted(text: str, m: re.Match[str]) -> _Span | None:
    """``415-555-0100`` / ``415.555.0100``: the pattern starts at the first separator (a
    literal start is much faster to search than a digit), the area code is read back."""
    s = m.start() - 3
    if s < 0 or not text[s:m.start()].isdigit() or text[m.start()] != text[m.start() + 4]:
        return None
    return _phone_span(text, s, m.end())


def _aws_secret(text: str, m: re.Match[str]) -> _Span | None:
    """The pattern starts at ``secret``; an ``aws_``/``AWS`` prefix belongs to the finding."""
    s = m.start()
    for prefix in ("aws_", "aws-", "aws"):
        if text[max(0, s - len(prefix)):s].lower() == prefix:
            return s - len(prefix), m.end()
    return m.span()


_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def _email(text: str, m: re.Match[str]) -> _Span | None:
    """The pattern starts at ``@``; the local part is read backwards (at most 64)."""
    s = m.start()
    i = s
    while i > 0 and s - i < 64 and text[i - 1] in _LOCAL:
        i -= 1
    if i > 0 and text[i - 1] == "\\":  # a JSON escape (``\n``) glued to the local part
        i += 1
    return (i, m.end()) if i < s else None


_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|"
                     r"rediss?|amqps?|mssql|sqlserver|oracle|cockroachdb)"
                     r"(?:\+[a-z0-9]{1,16})?\Z")


def _connection(text: str, m: re.Match[str]) -> _Span | None:
    """The pattern starts at ``://``; a database scheme must come right before it."""
    scheme = _SCHEME.search(text, max(0, m.start() - 40), m.start())
    return (scheme.start(), m.end()) if scheme else None


@dataclass(frozen=True)
class Detector:
    """One row of the table. Patterns start with a literal where they can (the regex engine
    then skips to it at C speed); ``refine`` checks what a pattern cannot say cheaply
    (boundaries, Luhn) and may widen the span backwards (e-mail local part, URL scheme)."""

    kind: str
    pattern: str
    secret: bool
    refine: Refine | None = None


_B64 = r"A-Za-z0-9+/"
# The table. Where two findings overlap, the one that starts first wins, then the row first.
DETECTORS: tuple[Detector, ...] = (
    Detector("private_key",
             r"-----BEGIN[A-Z0-9 ]{0,32}PRIVATE KEY(?: BLOCK)?-----"
             r"(?:[\s\S]{0,12000}?-----END[A-Z0-9 ]{0,32}PRIVATE KEY(?: BLOCK)?-----"
             r"|[A-Za-z0-9+/=\s\\:,.-]{0,12000})", True),
    Detector("aws_access_key_id", r"A(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9])", True,
             _not_before("")),
    Detector("aws_secret_access_key",
             r"[Ss][Ee][Cc][Rr][Ee][Tt]_?(?:[Aa][Cc][Cc][Ee][Ss][Ss]_?)?[Kk][Ee][Yy]"
             r"[\"']?\s{0,4}[:=]\s{0,4}[\"']?[" + _B64 + r"]{40}(?![" + _B64 + r"=])", True,
             _aws_secret),
    Detector("gcp_api_key", r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])", True,
             _not_before("_-")),
    Detector("azure_connection_string",
             r"(?:DefaultEndpointsProtocol=https?;|Endpoint=sb://[^;\s\"']{1,255};)"
             r"[^\s\"']{0,512}?(?:AccountKey|SharedAccessKey)=[" + _B64 + r"]{20,128}={0,2}"
             r"(?:;[^\s\"';\\]{1,255}){0,8}", True),
    Detector("anthropic_api_key", r"sk-ant-[A-Za-z0-9_-]{20,256}", True, _not_before("_-")),
    Detector("openai_api_key",
             r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,256}", True,
             _not_before("_-")),
    Detector("github_token",
             r"g(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})", True,
             _not_before("_")),
    Detector("gitlab_token", r"gl(?:pat|dt|rt|ptt|cbt|oas|ft)-[A-Za-z0-9_-]{20,64}", True,
             _not_before("_-")),
    Detector("slack_token", r"xox[abposre]-[A-Za-z0-9-]{10,255}", True, _not_before("_")),
    Detector("slack_token", r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,16}/"
             r"B[A-Z0-9]{6,16}/[A-Za-z0-9]{16,48}", True),
    Detector("jwt",
             r"eyJ[A-Za-z0-9_-]{5,4096}\.eyJ[A-Za-z0-9_-]{5,8192}\.[A-Za-z0-9_-]{0,4096}",
             True, _not_before("_-")),
    Detector("connection_string",
             r"://[^\s:@/\"'<>\\]{1,128}:[^\s@/\"'<>\\]{1,256}@[^\s\"'<>\\]{1,512}", True,
             _connection),
    Detector("email",
             r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}\b",
             False, _email),
    # a run of digits, spaces and dashes from a network's first digit; _card checks the rest
    Detector("payment_card", r"[2-6]\d[\d -]{10,25}\d", False, _card),
    Detector("phone", r"\+[1-9](?:[ .-]?\d){7,14}(?!\d)", False, _phone),
    Detector("phone", r"\(\d{3}\) ?\d{3}[-. ]\d{4}", False, _phone),
    Detector("phone", r"[-.]\d{3}[-.]\d{4}", False, _phone_dotted),
    Detector("phone", r"0(?:[1-9](?:[ .]\d{2}){4}|\d{2,4} \d{3,4} \d{4})", False, _phone),
)

SECRET_KINDS = frozenset(d.kind for d in DETECTORS if d.secret)
PERSONAL_KINDS = frozenset(d.kind for d in DETECTORS if not d.secret)
# The longest text any detector can match (bounded quantifiers; checked by the tests).
MAX_MATCH = 24 * 1024


@dataclass(frozen=True)
class DlpProfile:
    """A route's DLP settings: which kinds to look for, and what to do on a finding."""

    name: str
    action: DlpAction = DlpAction.REDACT
    kinds: frozenset[str] = field(default_factory=lambda: SECRET_KINDS | PERSONAL_KINDS)

    def __post_init__(self) -> None:
        unknown = self.kinds - SECRET_KINDS - PERSONAL_KINDS
        if unknown:
            raise Invalid(f"unknown DLP kinds: {', '.join(sorted(unknown))}")


PROFILES: Mapping[str, DlpProfile] = {
    "default": DlpProfile("default"),
    "secrets": DlpProfile("secrets", kinds=SECRET_KINDS),
    "block": DlpProfile("block", action=DlpAction.BLOCK),
    "block-secrets": DlpProfile("block-secrets", action=DlpAction.BLOCK, kinds=SECRET_KINDS),
}


@dataclass
class Findings:
    """How many findings of each kind; never what they were."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, other: Findings) -> None:
        self.counts.update(other.counts)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@functools.lru_cache(maxsize=64)
def _compiled(kinds: frozenset[str]) -> list[tuple[re.Pattern[str], str, Refine | None]]:
    """The detectors of a set of kinds, compiled: a scanner is built per gateway request,
    this is built once per profile. Scanners only read the list."""
    return [(re.compile(d.pattern), d.kind, d.refine) for d in DETECTORS if d.kind in kinds]


class DlpScanner:
    """One profile's detectors, compiled once; each scans the text in its own pass (a pass
    for a pattern that starts with a literal runs at memory speed) and overlaps are
    resolved after."""

    def __init__(self, profile: DlpProfile | None = None) -> None:
        self.profile = profile or PROFILES["default"]
        self._detectors = _compiled(frozenset(self.profile.kinds))

    def _matches(self, text: str, pos: int = 0, endpos: int | None = None
                 ) -> list[tuple[int, int, str]]:
        """(start, end, kind) of each finding, left to right, non-overlapping."""
        end = len(text) if endpos is None else endpos
        found: list[tuple[int, int, int, str]] = []
        for row, (pattern, kind, refine) in enumerate(self._detectors):
            for m in pattern.finditer(text, pos, end):
                span = m.span() if refine is None else refine(text, m)
                if span is not None:
                    found.append((max(span[0], pos), row, span[1], kind))
        if not found:
            return []
        found.sort()
        spans: list[tuple[int, int, str]] = []
        last = pos
        for start, _, stop, kind in found:
            if start >= last:
                spans.append((start, stop, kind))
                last = stop
        return spans

    def _apply(self, text: str, spans: list[tuple[int, int, str]], findings: Findings) -> str:
        if not spans:
            return text
        for _, _, kind in spans:
            findings.counts[kind.lstrip('"')] += 1
        if self.profile.action is DlpAction.BLOCK:
            raise DlpBlockedError(findings.counts)
        out, last = [], 0
        for start, end, kind in spans:
            out.append(text[last:start])
            # a kind marked with a leading quote replaces a JSON number: quote the placeholder
            out.append(f'"[REDACTED:{kind[1:]}]"' if kind[0] == '"' else f"[REDACTED:{kind}]")
            last = end
        out.append(text[last:])
        return "".join(out)

    # -- whole bodies ----------------------------------------------------------------------

    def scan_text(self, text: str, findings: Findings | None = None) -> tuple[str, Findings]:
        """The text with findings redacted (or :class:`DlpBlockedError`), and the counts."""
        findings = findings if findings is not None else Findings()
        return self._apply(text, list(self._matches(text)), findings), findings

    def scan_json(self, body: bytes | str) -> tuple[bytes, Findings]:
        """A JSON body with its findings redacted inside string values, still valid JSON (a
        card number written as a JSON number becomes the placeholder string). A body that
        is not JSON is scanned as text.

        Fast path: the raw text is scanned once and each finding replaced in place when it
        lies inside one string literal (the placeholder holds no quote or backslash) or is a
        whole number token. Bodies with ``\\u``, ``\\/`` or ``\\\\`` escapes, or a finding
        that straddles JSON syntax, are decoded and scanned value by value instead."""
        text = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body
        if "\\u" not in text and "\\/" not in text and "\\\\" not in text:
            spans = self._matches(text)
            if not spans:
                return text.encode("utf-8", "surrogateescape"), Findings()
            placed = _in_json_strings(text, spans)
            if placed is not None:
                findings = Findings()
                return self._apply(text, placed, findings).encode(
                    "utf-8", "surrogateescape"), findings
        findings = Findings()
        try:
            document = json.loads(text)
        except ValueError:
            redacted, _ = self.scan_text(text, findings)
            return redacted.encode("utf-8", "surrogateescape"), findings
        cleaned = self._walk(document, findings)
        if not findings.total:
            return text.encode("utf-8", "surrogateescape"), findings
        return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"), findings

    def _walk(self, value: Any, findings: Findings) -> Any:
        if isinstance(value, str):
            return self.scan_text(value, findings)[0]
        if isinstance(value, dict):
            return {self.scan_text(k, findings)[0]: self._walk(v, findings)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, findings) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and value > 10**11:
            text = str(value)
            redacted = self.scan_text(text, findings)[0]
            return value if redacted == text else redacted
        return value


_JSON_DELIMITERS = frozenset(",:[]{} \t\r\n")


def _in_json_strings(text: str, spans: list[tuple[int, int, str]]
                     ) -> list[tuple[int, int, str]] | None:
    """The spans, each inside one JSON string literal or a whole number token (a number is
    widened to carry the quotes of the placeholder string); ``None`` if one is neither.
    Assumes no ``\\\\`` escape in ``text`` so that ``\\"`` is always an escaped quote."""
    placed: list[tuple[int, int, str]] = []
    quotes, last = 0, 0
    for start, end, kind in spans:
        quotes += text.count('"', last, start) - text.count('\\"', last, start)
        last = start
        inside = quotes % 2 == 1
        if inside:
            if text.count('"', start, end) != text.count('\\"', start, end):
                return None
            if start and text[start - 1] == "\\":
                return None
            trailing = len(text[start:end]) - len(text[start:end].rstrip("\\"))
            if trailing % 2:
                return None
            placed.append((start, end, kind))
        else:
            token = text[start:end]
            if not token.isdigit() or (start and text[start - 1] not in _JSON_DELIMITERS) or (
                    end < len(text) and text[end] not in _JSON_DELIMITERS):
                return None
            placed.append((start, end, f'"{kind}'))  # see _apply: quoted placeholder
    return placed


class StreamScanner:
    """Scans a chunked body as it passes. :meth:`feed` returns what is safe to send now;
    :meth:`finish` returns the rest. A tail of ``hold`` characters (default
    :data:`MAX_MATCH`) is held back, so a finding cut by a chunk boundary is seen whole."""

    _CONTEXT = 64  # characters already sent that look-behinds still need to see

    def __init__(self, scanner: DlpScanner, *, hold: int = MAX_MATCH) -> None:
        self._scanner, self._hold = scanner, hold
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._pending, self._context = "", ""
        self.findings = Findings()

    def feed(self, chunk: bytes) -> bytes:
        self._pending += self._decoder.decode(chunk)
        if len(self._pending) <= self._hold:
            return b""
        return self._emit(final=False)

    def finish(self) -> bytes:
        self._pending += self._decoder.decode(b"", final=True)
        return self._emit(final=True)

    def _emit(self, *, final: bool) -> bytes:
        text = self._context + self._pending
        base = len(self._context)
        cut = len(text) if final else len(text) - self._hold
        spans: list[tuple[int, int, str]] = []
        for start, end, kind in self._scanner._matches(text, base):
            if not final and end > cut:
                cut = min(cut, start)
                break
            spans.append((start - base, end - base, kind))
        cut -= base
        out = self._scanner._apply(self._pending[:cut], spans, self.findings)
        sent = self._pending[:cut]
        self._context = (self._context + sent)[-self._CONTEXT:]
        self._pending = self._pending[cut:]
        return out.encode("utf-8", "surrogateescape")


_Path = tuple[str | int, ...]


def _width(pattern: str) -> int:
    """The longest text ``pattern`` can match (all detectors' repetitions are bounded)."""
    from re import _parser

    return int(_parser.parse(pattern).getwidth()[1])

# what a refinement widens a match over, before the pattern's own start
_WIDENED = {"email": re.compile(r"[A-Za-z0-9._%+-]+\Z"),
            "connection_string": re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")}
_MAX_LEAVES = 1024
_CARRY_PATHS = 256


@dataclass(eq=False)
class _SseEvent:
    """One event read: its lines (the first ``data`` line replaced by a slot for all of
    them), the joined data, its value (decoded JSON, or the text when it is not JSON), and
    its texts: the string values (by JSON path) that may continue the previous event's."""

    raw: bytes
    kept: list[bytes]
    slot: int | None
    joined: str = ""
    value: Any = None
    is_json: bool = False
    changed: bool = False
    texts: dict[_Path, str] = field(default_factory=dict)


def _leaves(value: Any) -> list[tuple[_Path, str]]:
    """The string values of a JSON value with their paths, in document order (bounded)."""
    out: list[tuple[_Path, str]] = []
    stack: list[tuple[_Path, Any]] = [((), value)]
    while stack and len(out) < _MAX_LEAVES:
        path, item = stack.pop()
        if isinstance(item, str):
            out.append((path, item))
        elif isinstance(item, dict) and len(path) < 64:
            stack.extend(((*path, k), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list) and len(path) < 64:
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(item))))
    return out


def _set_leaf(value: Any, path: _Path, text: str) -> Any:
    if not path:
        return text
    holder = value
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = text
    return value


class SseScanner:
    """Scans a ``text/event-stream`` body event by event (https://html.spec.whatwg.org/
    multipage/server-sent-events.html#event-stream-interpretation): the ``data:`` lines of an
    event are joined with line feeds, scanned (as JSON when they parse as JSON, which keeps
    JSON-RPC messages valid), and the event is written back with its other fields as they
    were. An incomplete event is held until its blank line; one longer than ``max_event``
    bytes is refused.

    A finding split across events (a client that appends streamed text, such as A2A
    artifact chunks or MCP progress messages, joins it again) is seen too. The texts of an
    event are its string values by JSON path (the whole data when it is not JSON), but for
    one equal to the previous event's at that path (a version, a task id: no streamed
    text). A text that ends in what could be the start of a finding (a partial match of a
    detector, through the ``regex`` module's partial matching, or a whole match that could
    go on; widened back over an e-mail's local part or a URL's scheme) leaves a carried
    tail: that text and 64 characters of context before it, at most :data:`MAX_MATCH`.
    The texts at the same path of the next events are scanned after it, and a finding
    across an event boundary is redacted (or blocks) in every event it touches that has
    not left: its placeholder in the first, its characters removed from the others. An
    event leaves at once unless its texts end in such a start of at least ``hold_min``
    characters; then it is held, with the events behind it, until an event with data ends
    none, or the stream ends, or more than ``max_held`` events or ``max_event`` bytes wait.
    So clean events are not delayed, and at most ``hold_min - 1`` characters of a split
    finding's start leave before its end is seen. Starts are looked for in the last
    ``window`` characters of each text."""

    _EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
    _CONTEXT = 64

    def __init__(self, scanner: DlpScanner, *, max_event: int = 1 << 20, hold_min: int = 8,
                 window: int = 4096, max_held: int = 64) -> None:
        import regex  # partial matching; only SSE bodies need it

        self._scanner, self._max = scanner, max_event
        self._hold_min, self._window, self._max_held = hold_min, window, max_held
        chosen = [d for d in DETECTORS if d.kind in scanner.profile.kinds]
        widths = [_width(d.pattern) for d in chosen]
        self._partials = [(regex.compile(d.pattern), _WIDENED.get(d.kind), min(w, window))
                          for d, w in zip(chosen, widths, strict=True)]
        self._detectors = [(*row, w) for row, w in zip(scanner._detectors, widths,
                                                         strict=True)]
        self._open: dict[_Path, tuple[str, int | None]] = {}  # the last _open_end per path
        self._buffer = b""
        # per path: the carried tail of texts that have left, and whether the finding it
        # ends in was counted already (a whole match)
        self._carry: dict[_Path, tuple[str, bool]] = {}
        self._last: dict[_Path, str] = {}  # the previous event's string values
        self._pending: list[_SseEvent] = []  # held events, and any events behind them
        self.findings = Findings()

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        out = []
        while True:
            m = self._EVENT_END.search(self._buffer)
            if m is None:
                break
            event, self._buffer = self._buffer[:m.end()], self._buffer[m.end():]
            out.append(self._push(event))
        if len(self._buffer) > self._max:
            raise SseEventTooLargeError(f"an event-stream event exceeds {self._max} bytes")
        return b"".join(out)

    def finish(self) -> bytes:
        """The rest: an unterminated last event is dispatched by no client, but it is scanned
        all the same before it is passed on; held events leave now."""
        rest, self._buffer = self._buffer, b""
        out = self._push(rest) if rest else b""
        return out + self._flush()

    # -- one event ---------------------------------------------------------------------------

    def _push(self, raw: bytes) -> bytes:
        event = self._read(raw)
        if event.slot is None:
            if not self._pending:
                return raw
            self._pending.append(event)
        else:
            strings = (_leaves(event.value) if event.is_json
                       else [((), str(event.value))])
            event.texts = {p: t for p, t in strings if self._last.get(p) != t}
            self._last = dict(strings)
            self._pending.append(event)
            if not self._holds(event):
                return self._flush()
        if len(self._pending) > self._max_held or sum(
                len(e.raw) for e in self._pending) > self._max:
            return self._flush()
        return b""

    def _read(self, raw: bytes) -> _SseEvent:
        data: list[str] = []
        kept: list[bytes] = []
        slot: int | None = None
        for line in re.split(rb"\r\n|\r|\n", raw):
            if line.startswith(b"data"):
                name, sep, value = line.partition(b":")
                if name == b"data":
                    if sep and value.startswith(b" "):
                        value = value[1:]
                    data.append(value.decode("utf-8", "surrogateescape"))
                    if slot is None:
                        slot = len(kept)
                        kept.append(b"")
                    continue
            kept.append(line)
        event = _SseEvent(raw, kept, slot)
        if slot is None:
            return event
        event.joined = event.value = "\n".join(data)
        with contextlib.suppress(ValueError, RecursionError):
            event.value, event.is_json = json.loads(event.joined), True
        return event

    def _joined(self, path: _Path) -> tuple[str, list[tuple[_SseEvent, int, int]]]:
        """The carried tail at ``path`` and the held texts after it, joined; where each
        held text lies in it."""
        text = self._carry.get(path, ("", True))[0]
        pieces = []
        for event in self._pending:
            piece = event.texts.get(path)
            if piece is not None:
                pieces.append((event, len(text), len(text) + len(piece)))
                text += piece
        return text, pieces

    def _holds(self, event: _SseEvent) -> bool:
        """Whether a text of ``event`` (after the carried and held ones) ends in the start
        of a finding of at least ``hold_min`` characters."""
        block = self._scanner.profile.action is DlpAction.BLOCK
        for path in event.texts:
            text, pieces = self._joined(path)
            start = self._open_end(text, path)
            if start is None or len(text) - start < self._hold_min:
                continue
            if not block:
                return True
            # blocking: a whole finding in this event or across the held ones stops now
            held_from = pieces[0][1] if pieces else len(text)
            return not (self._scanner._matches(event.texts[path]) or any(
                end > held_from for _, end, _ in self._scanner._matches(text)))
        return False

    def _flush(self) -> bytes:
        """Redact the findings across boundaries in the waiting events, carry their open
        ends, and let them all leave."""
        events, marks = [e for e in self._pending if e.slot is not None], []
        for path in dict.fromkeys(p for e in events for p in e.texts):
            carried, counted = self._carry.get(path, ("", True))
            text, pieces = self._joined(path)
            bounds = sorted({a for _, a, _ in pieces if a > 0})
            for start, end, kind in self._crossing(text, bounds):
                if start >= len(carried) or not counted:
                    self.findings.counts[kind] += 1
                    if self._scanner.profile.action is DlpAction.BLOCK:
                        raise DlpBlockedError(self.findings.counts)
                first = True
                for event, a, b in pieces:
                    lo, hi = max(start, a), min(end, b)
                    if lo < hi:
                        marks.append((event, path, lo - a, hi - a,
                                      f"[REDACTED:{kind}]" if first else ""))
                        first = False
            self._carry_end(path, text)
        for event, path, lo, hi, placeholder in sorted(marks, key=lambda m: -m[2]):
            leaf = event.texts[path]
            event.texts[path] = leaf[:lo] + placeholder + leaf[hi:]
            event.value = _set_leaf(event.value, path, event.texts[path])
            event.changed = True
        out, self._pending = self._pending, []
        return b"".join(self._render(e) if e.slot is not None else e.raw for e in out)

    def _crossing(self, text: str, bounds: list[int]) -> list[tuple[int, int, str]]:
        """The findings of ``text`` that cross one of ``bounds`` (each searched for only
        within its detector's widest match of the bound), left to right, not overlapping.
        Those inside one event are left to that event's own scan."""
        found: list[tuple[int, int, int, str]] = []
        for bound in bounds:
            for row, (pattern, kind, refine, width) in enumerate(self._detectors):
                for m in pattern.finditer(text, max(0, bound - width),
                                          min(len(text), bound + width + 1)):
                    if m.start() >= bound:
                        break
                    span = m.span() if refine is None else refine(text, m)
                    if span is not None and span[0] < bound < span[1]:
                        found.append((span[0], row, span[1], kind))
        spans: list[tuple[int, int, str]] = []
        last = 0
        for start, _, stop, kind in sorted(found):
            if start >= last:
                spans.append((start, stop, kind))
                last = stop
        return spans

    def _carry_end(self, path: _Path, text: str) -> None:
        start = self._open_end(text, path)
        if start is None:
            self._carry.pop(path, None)
            return
        whole = any(end == len(text) for _, end, _ in self._scanner._matches(text, start))
        self._carry[path] = (text[max(0, start - self._CONTEXT, len(text) - MAX_MATCH):],
                             whole)
        if len(self._carry) > _CARRY_PATHS:
            del self._carry[next(iter(self._carry))]

    def _open_end(self, text: str, path: _Path) -> int | None:
        """Where the earliest match that reaches the end of ``text`` starts (a partial
        match, or a whole one that could go on), widened back over what a detector's
        refinement takes before its pattern (an e-mail's local part, a URL's scheme).
        Each detector looks only as far back as its widest match (at most ``window``)."""
        cached = self._open.get(path)
        if cached is not None and cached[0] == text:
            return cached[1]
        start: int | None = None
        for pattern, before, width in self._partials:
            for m in pattern.finditer(text, max(0, len(text) - width - 1), partial=True):
                if m.end() == len(text) and m.start() < m.end():
                    at = m.start()
                    if before is not None:
                        lead = before.search(text, max(0, at - 256), at)
                        at = lead.start() if lead is not None else at
                    start = at if start is None else min(start, at)
                    break
        self._open[path] = (text, start)
        if len(self._open) > _CARRY_PATHS:
            del self._open[next(iter(self._open))]
        return start

    def _render(self, event: _SseEvent) -> bytes:
        """The event after its own scan, written back as it came when nothing changed."""
        assert event.slot is not None
        joined = event.joined
        if event.changed:
            joined = (json.dumps(event.value, ensure_ascii=False, separators=(",", ":"))
                      if event.is_json else str(event.value))
        if event.is_json:
            scanned, found = self._scanner.scan_json(joined)
            self.findings.add(found)
            text = scanned.decode("utf-8", "surrogateescape")
        else:
            text, _ = self._scanner.scan_text(joined, self.findings)
        if text == event.joined:
            return event.raw
        kept = list(event.kept)
        kept[event.slot] = b"\n".join(b"data: " + part.encode("utf-8", "surrogateescape")
                                      for part in text.split("\n"))
        return b"\n".join(kept)
