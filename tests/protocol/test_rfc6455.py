"""The RFC 6455 frame reader on its own: bytes in any pieces, calls to a sink out."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_gateway.protocol.rfc6455 import BAD_UTF8, FrameReader, accept_value, handshake_problem
from tests.wsframes import CLOSE, CONTINUATION, PING, PONG, TEXT, bad_frames
from tests.wsframes import client_frame as frame


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.reader: FrameReader | None = None
        self.hold_after_text = False

    def on_text(self, text: str, size: int) -> None:
        self.calls.append(("text", text, size))
        if self.hold_after_text and self.reader is not None:
            self.reader.hold()

    def on_ping(self, payload: bytes) -> None:
        self.calls.append(("ping", payload))

    def on_close(self, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def on_error(self, code: int, reason: str) -> None:
        self.calls.append(("error", code, reason))


def reader(max_size: int = 1 << 20) -> tuple[FrameReader, Sink]:
    sink = Sink()
    sink.reader = FrameReader(sink, max_size)
    return sink.reader, sink


# Any text but lone surrogates (which are not UTF-8; see the 1007 cases below).
MESSAGES = st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(messages=MESSAGES, data=st.data())
def test_any_split_of_the_stream_gives_the_same_messages(messages: list[str], data: Any) -> None:
    """Frames arrive in pieces cut anywhere, fragmented anywhere, with pings between."""
    stream = b""
    for text in messages:
        encoded = text.encode()
        cut = data.draw(st.integers(0, len(encoded)))
        if 0 < cut < len(encoded):  # fragmented (even inside a character), a ping between
            stream += frame(TEXT, encoded[:cut], fin=False) + frame(PING, b"p")
            stream += frame(CONTINUATION, encoded[cut:])
        else:
            stream += frame(TEXT, encoded)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=10)))
    target, sink = reader()
    start = 0
    for cut in [*cuts, len(stream)]:
        target.feed(stream[start:cut])
        start = cut
    texts = [call for call in sink.calls if call[0] == "text"]
    assert [t[1] for t in texts] == messages
    assert [t[2] for t in texts] == [len(m.encode()) for m in messages]
    assert not target.stopped


def test_lengths_of_7_16_and_64_bits() -> None:
    target, sink = reader()
    texts = ["a" * 125, "b" * 126, "c" * 65535, "d" * 65536]
    target.feed(b"".join(frame(TEXT, t.encode()) for t in texts))
    assert [call[1] for call in sink.calls] == texts


def test_empty_text_frames_are_ignored_and_pongs_are_dropped() -> None:
    target, sink = reader()
    target.feed(frame(TEXT, b"") + frame(PONG, b"x") + frame(TEXT, b"after"))
    assert sink.calls == [("text", "after", 5)]


def test_close_frame_ends_reading() -> None:
    target, sink = reader()
    target.feed(frame(CLOSE, struct.pack("!H", 1001) + b"bye") + frame(TEXT, b"late"))
    assert sink.calls == [("close", 1001, "bye")]
    assert target.stopped
    target.feed(frame(TEXT, b"later"))
    assert sink.calls == [("close", 1001, "bye")]


def test_close_without_code_is_1005() -> None:
    target, sink = reader()
    target.feed(frame(CLOSE, b""))
    assert sink.calls == [("close", 1005, "")]


def test_hold_keeps_later_frames_until_release() -> None:
    target, sink = reader()
    sink.hold_after_text = True
    target.feed(frame(TEXT, b"one") + frame(TEXT, b"two") + frame(TEXT, b"three")[:4])
    assert [call[1] for call in sink.calls] == ["one"]
    target.feed(frame(TEXT, b"x")[:0])  # nothing new: still held
    sink.hold_after_text = False
    target.release()
    assert [call[1] for call in sink.calls] == ["one", "two"]  # "three" is incomplete


def test_release_parses_the_rest() -> None:
    target, sink = reader()
    sink.hold_after_text = True
    mask = b"\x01\x02\x03\x04"
    data = frame(TEXT, b"one", mask=mask) + frame(TEXT, b"two", mask=mask)
    target.feed(data)
    target.feed(frame(TEXT, b"three", mask=mask))
    sink.hold_after_text = False
    target.release()
    assert [call[1] for call in sink.calls] == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        *bad_frames(limit=100),
        # What only the reader sees apart: more opcodes and codes, and bad UTF-8 that is
        # split across fragments.
        pytest.param(frame(0xB, b""), 1002, id="unknown-control-opcode"),
        pytest.param(frame(CLOSE, struct.pack("!H", 1005)), 1002, id="close-code-1005"),
        pytest.param(frame(CLOSE, struct.pack("!H", 2999)), 1002, id="close-code-2999"),
        pytest.param(
            frame(TEXT, b"\xc3", fin=False) + frame(CONTINUATION, b"("),
            1007,
            id="fragments-not-utf8",
        ),
    ],
)
def test_protocol_errors_are_reported_once_and_stop_the_reader(data: bytes, code: int) -> None:
    target, sink = reader(max_size=100)
    target.feed(data + frame(TEXT, b"after"))
    assert [call[:2] for call in sink.calls] == [("error", code)]
    assert target.stopped


def test_text_that_is_not_utf8_gets_1007_with_its_reason() -> None:
    target, sink = reader()
    target.feed(frame(TEXT, b"caf\xe9"))
    assert sink.calls == [("error", 1007, BAD_UTF8)]


def test_an_announced_oversize_frame_is_refused_from_its_header() -> None:
    """Memory stays bounded: the payload of a too-big frame is never buffered."""
    target, sink = reader(max_size=100)
    target.feed(frame(TEXT, b"x" * 1_000_000)[:14])
    assert sink.calls[0][:2] == ("error", 1009)


def test_close_codes_a_client_may_send() -> None:
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999):
        target, sink = reader()
        target.feed(frame(CLOSE, struct.pack("!H", code)))
        assert sink.calls == [("close", code, "")]


# -- the opening handshake ----------------------------------------------------------------


def test_accept_value_is_the_one_in_rfc_6455_section_1_3() -> None:
    assert accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, None),
        ({"Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, None),
        ({"Sec-WebSocket-Version": "12", "Sec-WebSocket-Key": "x"}, "Unsupported version: 12"),
        ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "c2hvcnQ="}, "Handshake error"),
        ({"Sec-WebSocket-Version": "13"}, "Handshake error"),
    ],
)
def test_handshake_problem(headers: dict[str, str], problem: str | None) -> None:
    found = handshake_problem(headers)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
