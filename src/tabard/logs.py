"""Structured JSON logs, one object per line, with secrets scrubbed on the way out.

Callers never log secrets on purpose; the scrubber is the second line of defence: anything
shaped like a JWT, a tabard bearer token or a PEM block is replaced before a record is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ["JsonFormatter", "configure_logging", "scrub"]

_SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*-----[\s\S]*?-----END [A-Z ]*-----"),
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    re.compile(r"tabard_[a-z]+_[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)(authorization|password|secret|token|kek)(\"?\s*[:=]\s*\"?)[^\s\",}]+"),
]
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def scrub(text: str) -> str:
    for pattern in _SECRET_PATTERNS[:3]:
        text = pattern.sub("[redacted]", text)
    return _SECRET_PATTERNS[3].sub(r"\1\2[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_") and key != "color_message":
                entry[key] = value if isinstance(value, int | float | bool) or value is None else (
                    scrub(str(value))
                )
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["traceback"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, separators=(",", ":"))


def configure_logging(level: str = "info", file: Path | None = None,
                      stream: TextIO | None = None) -> None:
    """Send tabard's and uvicorn's logs through the JSON formatter (stderr or a file)."""
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file)
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # one line per request is the audit log's job; these libraries would add their own
    for name in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
