"""Server-sent events (HTML Living Standard §9.2 "Server-sent events",
https://html.spec.whatwg.org/multipage/server-sent-events.html): the encoder the signal
stream writes with and an incremental parser its followers read with.

Written here because it is two small functions over the text format, and the libraries for
it tie themselves to one web framework (server side) or one HTTP client version (client
side); tabard needs both ends over plain strings and bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["SseMessage", "SseParser", "encode_comment", "encode_message"]


@dataclass(frozen=True, slots=True)
class SseMessage:
    event: str
    data: str
    id: str | None


def encode_message(data: str, *, event: str | None = None, id: int | str | None = None
                   ) -> bytes:
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def encode_comment(text: str = "") -> bytes:
    return f": {text}\n\n".encode()


class SseParser:
    """Feed bytes as they arrive; iterate complete messages. Comments (heartbeats) yield
    nothing but count as activity for the caller."""

    def __init__(self) -> None:
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.last_id: str | None = None

    def feed(self, chunk: str) -> Iterator[SseMessage]:
        self._buffer += chunk
        while True:
            cut = -1
            for sep in ("\r\n", "\n", "\r"):
                i = self._buffer.find(sep)
                if i != -1 and (cut == -1 or i < cut):
                    cut, width = i, len(sep)
            if cut == -1:
                return
            if self._buffer[cut] == "\r" and cut + 1 == len(self._buffer):
                return  # a lone CR at the end may be the start of CRLF
            line, self._buffer = self._buffer[:cut], self._buffer[cut + width:]
            message = self._line(line)
            if message is not None:
                yield message

    def _line(self, line: str) -> SseMessage | None:
        if not line:
            if not self._data and self._id is None and not self._event:
                return None
            message = SseMessage(self._event or "message", "\n".join(self._data), self._id)
            if self._id is not None:
                self.last_id = self._id
            self._event, self._data, self._id = "", [], None
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
