"""The server's own RFC 6455 connection (both WebSocket routes), spoken to byte by byte
over a real socket: handshake, masking, fragmentation, control frames,
the closing handshake, and the protocol errors a client can make."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest

from sockjs_gateway import Endpoint
from sockjs_gateway.server import rfc6455
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT
from tests.wsframes import CLOSE, CONTINUATION, PING, PONG, TEXT, bad_frames, client_frame


class Wire:
    """A WebSocket client at the byte level."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.head = b""

    @classmethod
    async def connect(cls, port: int, path: str, *, extensions: str = "") -> Wire:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        extra = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        wire = cls(reader, writer)
        async with asyncio.timeout(TIMEOUT):
            wire.head = await reader.readuntil(b"\r\n\r\n")
        return wire

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame: (first byte, payload)."""
        async with asyncio.timeout(TIMEOUT):
            first, second = await self.reader.readexactly(2)
            assert not second & 0x80, "server frames are never masked"
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first, await self.reader.readexactly(size)

    async def text(self) -> str:
        first, payload = await self.frame()
        assert first == 0x81, (first, payload)
        return payload.decode()

    async def close_frame(self) -> tuple[int, str]:
        """Read up to the server's close frame: its code and reason."""
        while True:
            first, payload = await self.frame()
            if first == 0x88:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
            assert first == 0x81, (first, payload)  # (c[...] frames may come first)

    async def ended(self) -> bool:
        """True once the server has closed the connection."""
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


async def gone(endpoint: Endpoint) -> None:
    """Wait until the endpoint has forgotten every session."""
    async with asyncio.timeout(TIMEOUT):
        while endpoint.session_count:  # noqa: ASYNC110 (no event for "forgotten")
            await asyncio.sleep(0.01)


async def opened(
    make_endpoint: MakeEndpoint, **options: object
) -> tuple[Wire, RecordingHandler, Endpoint]:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, **options)
    assert client.port is not None
    wire = await Wire.connect(client.port, "/sockjs/000/wire/websocket")
    assert await wire.text() == "o"
    return wire, handler, endpoint


async def test_handshake_answers_the_rfc_sample_key(make_endpoint: MakeEndpoint) -> None:
    wire, _, _ = await opened(make_endpoint)
    head = wire.head.decode().lower()
    assert head.startswith("http/1.1 101")
    assert "sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in head  # RFC 6455 1.3
    assert "permessage-deflate" not in head
    wire.close()


async def test_deflate_is_declined_by_default_and_offered_when_enabled(
    make_endpoint: MakeEndpoint,
) -> None:
    offer = "permessage-deflate; client_max_window_bits"
    for enabled in (False, True):
        client, _ = await make_endpoint(websocket_compression=enabled)
        assert client.port is not None
        wire = await Wire.connect(client.port, "/sockjs/000/dfl/websocket", extensions=offer)
        assert ("permessage-deflate" in wire.head.decode().lower()) is enabled
        wire.close()


async def test_masked_frames_of_every_length_header_are_read(make_endpoint: MakeEndpoint) -> None:
    wire, handler, _ = await opened(make_endpoint)
    texts = ["x" * 10, "y" * 300, "z" * 70_000]  # 7-bit, 16-bit and 64-bit lengths
    for text in texts:
        wire.send(client_frame(TEXT, json.dumps([text]).encode()))
        assert await wire.text() == "a" + json.dumps([text])
    assert [event[2] for event in handler.of_kind("message")] == texts
    wire.close()


async def test_a_frame_split_into_single_bytes_is_read(make_endpoint: MakeEndpoint) -> None:
    wire, _, _ = await opened(make_endpoint)
    data = client_frame(TEXT, b'["split", "in", "bytes"]') + client_frame(TEXT, b'"two"')
    for byte in data:
        wire.send(bytes((byte,)))
        await wire.writer.drain()
    assert await wire.text() == 'a["split"]'
    assert await wire.text() == 'a["in"]'
    assert await wire.text() == 'a["bytes"]'
    assert await wire.text() == 'a["two"]'
    wire.close()


async def test_fragmented_message_with_a_ping_inside_it(make_endpoint: MakeEndpoint) -> None:
    wire, handler, _ = await opened(make_endpoint)
    wire.send(
        client_frame(TEXT, b'["caf', fin=False)
        + client_frame(PING, b"are you there")
        + client_frame(CONTINUATION, "\u00e9".encode()[:1], fin=False)  # UTF-8 split too
        + client_frame(CONTINUATION, "\u00e9".encode()[1:] + b'"]')
    )
    assert await wire.frame() == (0x8A, b"are you there")  # the pong comes first
    assert await wire.text() == 'a["caf\u00e9"]'
    assert [event[2] for event in handler.of_kind("message")] == ["caf\u00e9"]
    wire.close()


async def test_pongs_are_ignored(make_endpoint: MakeEndpoint) -> None:
    wire, _, _ = await opened(make_endpoint)
    wire.send(client_frame(PONG, b"unsolicited") + client_frame(TEXT, b'["after"]'))
    assert await wire.text() == 'a["after"]'
    wire.close()


async def test_client_close_is_answered_with_its_code_and_ends_the_connection(
    make_endpoint: MakeEndpoint,
) -> None:
    wire, handler, endpoint = await opened(make_endpoint)
    wire.send(client_frame(CLOSE, struct.pack("!H", 4001) + "bye \u00e9".encode()))
    assert await wire.close_frame() == (4001, "bye \u00e9")
    assert await wire.ended()
    wire.close()
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (4001, "bye \u00e9")
    await gone(endpoint)


async def test_empty_client_close_is_heard_as_1005(make_endpoint: MakeEndpoint) -> None:
    wire, handler, _ = await opened(make_endpoint)
    wire.send(client_frame(CLOSE, b""))
    assert await wire.close_frame() == (1000, "")  # 1005 may not go on the wire
    assert (await handler.wait_for("close"))[0][2] == 1005
    wire.close()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        *bad_frames(limit=1000),
        # Framing fine, SockJS payload not: the session layer's 1007.
        pytest.param(client_frame(TEXT, b'["broken'), 1007, id="not-json"),
    ],
)
async def test_protocol_errors_close_with_their_code(
    make_endpoint: MakeEndpoint, data: bytes, code: int
) -> None:
    """The client gets the close frame, its handler hears the same code, the server shuts
    the connection, and later bytes from the client harm nothing."""
    wire, handler, endpoint = await opened(make_endpoint, max_message_bytes=1000)
    wire.send(data)
    assert (await wire.close_frame())[0] == code
    wire.send(client_frame(TEXT, b'["ignored"]') * 3)
    assert await wire.ended()
    wire.close()
    closes = await handler.wait_for("close")
    assert closes[0][2] == code
    assert handler.of_kind("message") == []
    await gone(endpoint)


async def test_server_close_waits_for_the_client_answer(make_endpoint: MakeEndpoint) -> None:
    wire, handler, _ = await opened(make_endpoint)
    session = (await handler.wait_for("open"))[0][1]
    session.close(3000, "Go away!")
    assert await wire.text() == 'c[3000,"Go away!"]'
    assert await wire.close_frame() == (3000, "Go away!")
    wire.send(client_frame(CLOSE, struct.pack("!H", 3000)))
    assert await wire.ended()
    wire.close()


async def test_client_that_never_answers_a_close_is_cut_off(
    make_endpoint: MakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rfc6455, "CLOSE_TIMEOUT", 0.2)
    wire, handler, _ = await opened(make_endpoint)
    session = (await handler.wait_for("open"))[0][1]
    session.close(3000, "Go away!")
    assert await wire.close_frame() == (3000, "Go away!")
    assert await wire.ended()
    wire.close()


async def test_vanished_client_closes_the_session_with_1006(make_endpoint: MakeEndpoint) -> None:
    wire, handler, endpoint = await opened(make_endpoint)
    wire.writer.transport.abort()
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (1006, "Connection lost")
    await gone(endpoint)


async def test_a_long_close_reason_is_cut_on_a_character_boundary(
    make_endpoint: MakeEndpoint,
) -> None:
    """A close frame holds 123 bytes of reason; the cut never splits a character (a
    browser fails the connection on a reason that is not UTF-8)."""
    wire, handler, _ = await opened(make_endpoint)
    session = (await handler.wait_for("open"))[0][1]
    session.close(4000, "\u00e9" * 100)  # 200 bytes of UTF-8
    assert await wire.text() == 'c[4000,"' + "\u00e9" * 100 + '"]'  # the c frame has it all
    assert await wire.close_frame() == (4000, "\u00e9" * 61)  # 122 bytes, strict UTF-8
    wire.close()
