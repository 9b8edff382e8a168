"""The RFC 6455 frame reader on its own: bytes in any pieces, calls to a sink out.

The reader decodes a read that is exactly one small whole text frame on a fast path, and
everything else in its parse loop. The ``feed`` fixture runs each stream test both ways:
in one read, one frame per read (each small text frame then takes the fast path, as bytes
and as the bytearray the server passes), and with each frame's first byte read apart
(never the fast path); a property checks that both paths agree on any single frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp._websocket.helpers import websocket_mask
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_gateway.protocol.rfc6455 import (
    BAD_UTF8,
    FrameReader,
    accept_value,
    handshake_problem,
    text_frame,
    unmask,
)
from tests.wsframes import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, bad_frames
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


def frames_of(stream: bytes) -> list[bytes]:
    """``stream`` cut at its frame boundaries (the last piece may be part of a frame)."""
    pieces = []
    pos = 0
    while pos < len(stream):
        second = stream[pos + 1] if len(stream) - pos > 1 else 0
        length, head = second & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(stream[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(stream[pos + 2 : pos + 10], "big"), 10
        end = min(pos + head + (4 if second & 0x80 else 0) + length, len(stream))
        pieces.append(stream[pos:end])
        pos = end
    return pieces


Feed = Callable[[FrameReader, bytes], None]


def one_read(target: FrameReader, data: bytes) -> None:
    target.feed(data)


def frame_per_read(target: FrameReader, data: bytes) -> None:
    for piece in frames_of(data):
        target.feed(piece)


def frame_per_read_bytearray(target: FrameReader, data: bytes) -> None:
    for piece in frames_of(data):
        target.feed(bytearray(piece))


def first_byte_apart(target: FrameReader, data: bytes) -> None:
    for piece in frames_of(data):
        target.feed(piece[:1])
        target.feed(piece[1:])


@pytest.fixture(params=[one_read, frame_per_read, frame_per_read_bytearray, first_byte_apart])
def feed(request: pytest.FixtureRequest) -> Feed:
    """Feeds a stream to a reader in one of the ways above."""
    feeder: Feed = request.param
    return feeder


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


def test_lengths_of_7_16_and_64_bits(feed: Feed) -> None:
    target, sink = reader()
    texts = ["a" * 125, "b" * 126, "c" * 65535, "d" * 65536]
    feed(target, b"".join(frame(TEXT, t.encode()) for t in texts))
    assert [call[1] for call in sink.calls] == texts


def test_empty_text_frames_are_ignored_and_pongs_are_dropped(feed: Feed) -> None:
    target, sink = reader()
    feed(target, frame(TEXT, b"") + frame(PONG, b"x") + frame(TEXT, b"after"))
    assert sink.calls == [("text", "after", 5)]


def test_close_frame_ends_reading(feed: Feed) -> None:
    target, sink = reader()
    feed(target, frame(CLOSE, struct.pack("!H", 1001) + b"bye") + frame(TEXT, b"late"))
    assert sink.calls == [("close", 1001, "bye")]
    assert target.stopped
    feed(target, frame(TEXT, b"later"))
    assert sink.calls == [("close", 1001, "bye")]


def test_close_without_code_is_1005(feed: Feed) -> None:
    target, sink = reader()
    feed(target, frame(CLOSE, b""))
    assert sink.calls == [("close", 1005, "")]


def test_hold_keeps_later_frames_until_release(feed: Feed) -> None:
    target, sink = reader()
    sink.hold_after_text = True
    feed(target, frame(TEXT, b"one") + frame(TEXT, b"two") + frame(TEXT, b"three")[:4])
    assert [call[1] for call in sink.calls] == ["one"]
    target.feed(frame(TEXT, b"x")[:0])  # nothing new: still held
    sink.hold_after_text = False
    target.release()
    assert [call[1] for call in sink.calls] == ["one", "two"]  # "three" is incomplete


def test_release_parses_the_rest(feed: Feed) -> None:
    target, sink = reader()
    sink.hold_after_text = True
    mask = b"\x01\x02\x03\x04"
    data = frame(TEXT, b"one", mask=mask) + frame(TEXT, b"two", mask=mask)
    feed(target, data)
    feed(target, frame(TEXT, b"three", mask=mask))
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
def test_protocol_errors_are_reported_once_and_stop_the_reader(
    data: bytes, code: int, feed: Feed
) -> None:
    target, sink = reader(max_size=100)
    feed(target, data + frame(TEXT, b"after"))
    assert [call[:2] for call in sink.calls] == [("error", code)]
    assert target.stopped


def test_text_that_is_not_utf8_gets_1007_with_its_reason(feed: Feed) -> None:
    target, sink = reader()
    feed(target, frame(TEXT, b"caf\xe9"))
    assert sink.calls == [("error", 1007, BAD_UTF8)]


def test_an_announced_oversize_frame_is_refused_from_its_header(feed: Feed) -> None:
    """Memory stays bounded: the payload of a too-big frame is never buffered."""
    target, sink = reader(max_size=100)
    feed(target, frame(TEXT, b"x" * 1_000_000)[:14])
    assert sink.calls[0][:2] == ("error", 1009)


def test_close_codes_a_client_may_send(feed: Feed) -> None:
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999):
        target, sink = reader()
        feed(target, frame(CLOSE, struct.pack("!H", code)))
        assert sink.calls == [("close", code, "")]


# -- the fast path and the parse loop agree ------------------------------------------------


def calls_of(data: bytes, feeder: Feed, *, max_size: int, before: bytes, held: bool) -> Any:
    """What a reader reports for ``data`` fed by ``feeder``, after ``before`` (fed in one
    read), and while held if ``held`` (released afterwards)."""
    target, sink = reader(max_size)
    target.feed(before)
    if held:
        target.hold()
    feeder(target, data)
    target.release()
    return sink.calls, target.stopped


@st.composite
def single_frames(draw: st.DrawFn) -> bytes:
    """One client frame, near the fast path's conditions or across them: any first byte,
    masked or not, 0-130 bytes of text or of any bytes, cut short or run into more."""
    first = draw(st.sampled_from([0x81, 0x81, 0x81, 0x01, 0x80, 0xC1, 0x91, 0x82, 0x89, 0x88]))
    if draw(st.booleans()):
        payload = draw(st.text(min_size=0, max_size=60)).encode()[:130]
    else:
        payload = draw(st.binary(min_size=0, max_size=130))
    data = frame(first & 0x0F, payload, fin=bool(first & 0x80), rsv=first & 0x70)
    if not draw(st.integers(0, 9)):  # the same frame unmasked
        data = frame(first & 0x0F, payload, fin=bool(first & 0x80), rsv=first & 0x70, masked=False)
    cut = draw(st.integers(0, 3))
    if cut and len(data) > cut:
        data = data[:-cut]
    return data + draw(st.sampled_from([b"", b"", b"\x81", frame(TEXT, b"more")]))


@settings(max_examples=1000, deadline=None)
@given(
    data=single_frames(),
    max_size=st.sampled_from([0, 1, 5, 64, 124, 125, 126, 1 << 20]),
    before=st.sampled_from([b"", frame(TEXT, b"frag", fin=False), frame(TEXT, b"x")[:3]]),
    held=st.booleans(),
)
def test_a_read_of_one_frame_is_decoded_alike_by_both_paths(
    data: bytes, max_size: int, before: bytes, held: bool
) -> None:
    def calls(feeder: Feed) -> Any:
        return calls_of(data, feeder, max_size=max_size, before=before, held=held)

    expected = calls(first_byte_apart)
    assert calls(one_read) == expected
    assert calls(lambda target, data: target.feed(bytearray(data))) == expected


@pytest.mark.parametrize(
    ("payload", "max_size", "expected"),
    [
        pytest.param(b'["a"]', 1 << 20, [("text", '["a"]', 5)], id="ascii"),
        pytest.param(
            '["caf\u00e9 \u6f22 \U0001f600"]'.encode(),
            1 << 20,
            [("text", '["caf\u00e9 \u6f22 \U0001f600"]', 18)],
            id="unicode",
        ),
        pytest.param(b"x", 1 << 20, [("text", "x", 1)], id="one-byte"),
        pytest.param(b"y" * 125, 1 << 20, [("text", "y" * 125, 125)], id="largest-7-bit"),
        pytest.param(b"z" * 126, 1 << 20, [("text", "z" * 126, 126)], id="smallest-16-bit"),
        pytest.param(b"", 1 << 20, [], id="empty-ignored"),
        pytest.param(b"\xed\xa0\x80", 1 << 20, [("error", 1007, BAD_UTF8)], id="surrogate"),
        pytest.param(b"\xf0\x9f\x98", 1 << 20, [("error", 1007, BAD_UTF8)], id="cut-char"),
        pytest.param(b"abcdef", 5, [("error", 1009, "Message size 6 exceeds limit 5")], id="big"),
        pytest.param(b"abcde", 5, [("text", "abcde", 5)], id="at-limit"),
    ],
)
def test_one_small_text_frame_in_one_read(
    payload: bytes, max_size: int, expected: list[tuple[Any, ...]], feed: Feed
) -> None:
    target, sink = reader(max_size)
    feed(target, frame(TEXT, payload))
    assert sink.calls == expected


def test_several_small_frames_in_one_read_take_the_loop_and_keep_their_order() -> None:
    target, sink = reader()
    target.feed(bytearray(frame(TEXT, b"1") + frame(PING, b"p") + frame(TEXT, b"2")))
    assert sink.calls == [("text", "1", 1), ("ping", b"p"), ("text", "2", 1)]
    assert all(type(call[1]) is bytes for call in sink.calls if call[0] == "ping")


def test_a_small_text_frame_inside_a_fragmented_message_is_refused() -> None:
    target, sink = reader()
    target.feed(frame(TEXT, b'["a', fin=False))
    target.feed(frame(TEXT, b'["b"]'))  # one whole small text frame: not the fast path
    assert sink.calls == [("error", 1002, "A new message began inside a fragmented one.")]


def test_fed_bytes_may_be_reused_by_the_caller() -> None:
    """The server reads every connection into one buffer: nothing the reader keeps may
    point into it."""
    target, sink = reader()
    second = frame(CONTINUATION, b"second")
    buffer = bytearray(frame(TEXT, b"first", fin=False) + second[:3])
    target.feed(buffer)
    buffer[:] = b"\x00" * len(buffer)
    target.feed(second[3:])
    assert sink.calls == [("text", "firstsecond", 11)]


@pytest.mark.parametrize("size", [120, 124, 125])
def test_a_16_bit_length_under_126_is_still_a_16_bit_length(size: int, feed: Feed) -> None:
    """Not the shortest encoding, which RFC 6455 asks of senders; read all the same. With
    124 bytes the read is 132 bytes long, one past what the fast path takes, whose
    length byte would be 126: the fast path must not read it as a 126-byte frame."""
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"y" * size))
    target, sink = reader()
    feed(target, struct.pack("!BBH", 0x81, 0xFE, size) + mask + payload)
    assert sink.calls == [("text", "y" * size, size)]


def test_a_binary_frame_in_one_read_is_refused() -> None:
    target, sink = reader()
    target.feed(frame(BINARY, b"\x00"))
    assert sink.calls == [("error", 1003, "Text frames only.")]


@settings(max_examples=200, deadline=None)
@given(mask=st.binary(min_size=4, max_size=4), data=st.binary(max_size=300))
def test_unmask_is_aiohttps_c_masking(mask: bytes, data: bytes) -> None:
    """The pure-Python unmasking (used when aiohttp's C one is missing) XORs in place
    exactly as the C one the server passes to the reader."""
    ours, theirs = bytearray(data), bytearray(data)
    unmask(mask, ours)
    websocket_mask(mask, theirs)
    assert ours == theirs
    unmask(mask, ours)
    assert ours == data


@pytest.mark.parametrize("text", ["", "x", "x" * 125, "\u00e9" * 62, "\u00e9" * 63, "x" * 126])
@pytest.mark.parametrize("repeat", [1, 520])  # 520: the 16-bit and 64-bit lengths
def test_text_frame_headers(text: str, repeat: int) -> None:
    payload = (text * repeat).encode()
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    assert text_frame(text * repeat) == head + payload


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
