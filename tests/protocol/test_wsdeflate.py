"""permessage-deflate (RFC 7692) on its own: the handshake answer, both directions of the
codec against zlib as a client uses it, and the reader's compressed messages."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_gateway.protocol.rfc6455 import FrameReader
from sockjs_gateway.protocol.wsdeflate import negotiate
from tests.protocol.test_rfc6455 import Sink
from tests.wsframes import CONTINUATION, PING, TEXT, client_frame

RSV1 = 0x40


def client_deflate(text: str, deflater: zlib._Compress | None = None) -> bytes:
    """What a client sends for ``text``: deflate, sync-flushed, without the 4-byte tail."""
    deflater = deflater or zlib.compressobj(6, zlib.DEFLATED, -15)
    data = deflater.compress(text.encode()) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\0\0\xff\xff")
    return data[:-4]


def client_inflate(payload: bytes, inflater: zlib._Decompress) -> str:
    return inflater.decompress(payload + b"\0\0\xff\xff").decode()


@pytest.mark.parametrize(
    ("offers", "answer"),
    [
        ("permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10",
        ),
        # An offer the server cannot take is declined; the next one is tried.
        ("permessage-deflate; server_max_window_bits=8, permessage-deflate", "permessage-deflate"),
        (
            "permessage-deflate; unknown=1, permessage-deflate; client_max_window_bits=9",
            "permessage-deflate",
        ),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; client_max_window_bits=16", None),
        ("x-webkit-deflate-frame", None),
        ("", None),
    ],
)
def test_negotiation_answers_the_first_acceptable_offer(offers: str, answer: str | None) -> None:
    negotiated = negotiate(offers)
    assert (negotiated[0] if negotiated else None) == answer


@pytest.mark.parametrize("takeover", [True, False])
def test_server_messages_inflate_as_a_client_reads_them(takeover: bool) -> None:
    offer = "permessage-deflate" + ("" if takeover else "; server_no_context_takeover")
    negotiated = negotiate(offer)
    assert negotiated is not None
    deflate = negotiated[1]
    inflater = zlib.decompressobj(-15)
    texts = ["hello " * 50, "hello " * 50, "ünïcödé", ""]
    for text in texts:
        fresh = inflater if takeover else zlib.decompressobj(-15)
        assert client_inflate(deflate.deflate(text.encode()), fresh) == text
    # With context takeover a repeated message refers back to the first one: shorter.
    again = [len(deflate.deflate(b"x" * 300)) for _ in range(2)]
    assert (again[1] < again[0]) is takeover


def test_inflating_stops_at_the_limit() -> None:
    negotiated = negotiate("permessage-deflate")
    assert negotiated is not None
    bomb = client_deflate("x" * (8 * 1024 * 1024))
    assert negotiated[1].inflate(bomb, 1024 * 1024) is None  # the connection then closes
    fresh = negotiate("permessage-deflate")
    assert fresh is not None
    assert fresh[1].inflate(client_deflate("small"), 1024) == b"small"
    with pytest.raises(ValueError, match="invalid"):
        fresh[1].inflate(b"\xff\xff\xff\xff not deflate", 1024)


def deflate_reader(max_size: int = 1 << 20) -> tuple[FrameReader, Sink]:
    negotiated = negotiate("permessage-deflate")
    assert negotiated is not None
    sink = Sink()
    sink.reader = FrameReader(sink, max_size, inflate=negotiated[1].inflate)
    return sink.reader, sink


@settings(max_examples=100, deadline=None)
@given(
    texts=st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=6),
    cut=st.integers(0, 50),
)
def test_compressed_messages_whole_or_fragmented_are_read(texts: list[str], cut: int) -> None:
    reader, sink = deflate_reader()
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)  # one context, taken over
    for text in texts:
        payload = client_deflate(text, deflater)
        if 0 < cut < len(payload):  # RSV1 on the first fragment only, a ping between
            reader.feed(client_frame(TEXT, payload[:cut], fin=False, rsv=RSV1))
            reader.feed(client_frame(PING, b"p"))
            reader.feed(client_frame(CONTINUATION, payload[cut:]))
        else:
            reader.feed(client_frame(TEXT, payload, rsv=RSV1))
    assert [call[1] for call in sink.calls if call[0] == "text"] == texts


def test_compression_errors_close_with_the_protocols_codes() -> None:
    reader, sink = deflate_reader(max_size=1000)
    reader.feed(client_frame(TEXT, client_deflate("x" * 5000), rsv=RSV1))
    assert sink.calls == [("error", 1009, "Message inflates past the limit 1000")]
    reader, sink = deflate_reader()
    reader.feed(client_frame(TEXT, b"\xff\xfe not deflate", rsv=RSV1))
    assert sink.calls == [("error", 1007, "Invalid compressed data")]
    reader, sink = deflate_reader()
    reader.feed(client_frame(TEXT, b"a", fin=False) + client_frame(CONTINUATION, b"b", rsv=RSV1))
    assert sink.calls[-1][:2] == ("error", 1002)  # RSV1 on a continuation frame
    reader, sink = deflate_reader()
    reader.feed(client_frame(PING, b"", rsv=RSV1))
    assert sink.calls[-1][:2] == ("error", 1002)  # nor on a control frame
    plain = Sink()
    FrameReader(plain, 1000).feed(client_frame(TEXT, client_deflate("x"), rsv=RSV1))
    assert plain.calls[-1][:2] == ("error", 1002)  # not negotiated
