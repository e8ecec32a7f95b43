"""The server-sent events codec of the signal stream (HTML Living Standard §9.2): what the
encoder writes the parser reads back, across arbitrary chunk boundaries and line endings."""

from __future__ import annotations

from tabard.signals import SseParser, encode_comment, encode_message


def test_round_trip_across_every_chunk_boundary() -> None:
    wire = (encode_comment("heartbeat") + encode_message("a\nb", event="signal", id=7)
            + encode_message("{}", event="resync", id=9)).decode()
    for cut in range(len(wire) + 1):
        parser = SseParser()
        got = [*parser.feed(wire[:cut]), *parser.feed(wire[cut:])]
        assert [(m.event, m.data, m.id) for m in got] == [
            ("signal", "a\nb", "7"), ("resync", "{}", "9")], cut
        assert parser.last_id == "9"


def test_crlf_and_cr_line_ends_default_event_and_ignored_fields() -> None:
    parser = SseParser()
    got = list(parser.feed("data: x\r\nretry: 5\r\nfoo\r\n\r\nid: 3\rdata:y\r\r"))
    # a CR at the very end may be half of a CRLF: it ends its line once more text arrives
    got += parser.feed("data: z\n\n")
    assert [(m.event, m.data, m.id) for m in got] == [("message", "x", None),
                                                     ("message", "y", "3"),
                                                     ("message", "z", None)]
