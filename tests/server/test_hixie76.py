"""Hixie-76 WebSocket (Safari 5, Chrome 6) behind the command line's runner, over raw
sockets, with the handshake from draft-hixie-thewebsocketprotocol-76 and the SockJS
protocol suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from sockjs_gateway import Session, SockJSOptions, add_endpoint
from sockjs_gateway.server.hixie76 import LegacyWebSocketRunner, challenge_response
from tests.conftest import RecordingHandler

KEY1 = "4 @1  46546xW%0l 1 5"
KEY2 = "12998 5 Y3 1  .P00"
KEY3 = b"aaaaaaaa"
#: The 16-byte challenge answer for KEY1, KEY2 and KEY3, as the SockJS protocol suite
#: (``test_haproxy``) expects it.
ANSWER = b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{"
PATH = "/sockjs/000/hixie/websocket"


@asynccontextmanager
async def serving(
    handler: RecordingHandler, runner_class: type[web.AppRunner] = LegacyWebSocketRunner
) -> AsyncIterator[int]:
    """Serve an app with one endpoint at ``/sockjs``; yields the port."""
    app = web.Application()
    add_endpoint(app, handler, prefix="/sockjs", options=SockJSOptions(allowed_origins=("*",)))
    runner = runner_class(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def handshake(port: int, key1: str = KEY1, key2: str = KEY2) -> bytes:
    return (
        f"GET {PATH} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: WebSocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key2: {key2}\r\n"
        f"Sec-WebSocket-Key1: {key1}\r\n"
        "Origin: http://example.com\r\n"
        "\r\n"
    ).encode()


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    """The status line and headers (lower-cased names) of a response."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


@asynccontextmanager
async def opened(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A Hixie-76 connection past its handshake and the open frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(handshake(port))
        await read_head(reader)
        writer.write(KEY3)
        assert await asyncio.wait_for(reader.readexactly(19), 5) == ANSWER + b"\x00o\xff"
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


async def test_handshake_challenge_and_frames() -> None:
    handler = RecordingHandler()
    async with serving(handler) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(handshake(port))
            await writer.drain()
            # The headers must arrive before the client sends key3 (HAProxy waits for them).
            status, headers = await read_head(reader)
            assert status.startswith("HTTP/1.1 101")
            assert headers["upgrade"].lower() == "websocket"
            assert headers["connection"].lower() == "upgrade"
            assert headers["sec-websocket-location"] == f"ws://127.0.0.1:{port}{PATH}"
            assert headers["sec-websocket-origin"] == "http://example.com"
            assert "content-length" not in headers
            assert "transfer-encoding" not in headers

            writer.write(KEY3)
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(16), 5) == ANSWER
            assert await asyncio.wait_for(reader.readexactly(3), 5) == b"\x00o\xff"

            writer.write(b'\x00["hi"]\xff')
            await writer.drain()
            expected = b'\x00a["hi"]\xff'
            assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
        finally:
            writer.close()
            await writer.wait_closed()
        messages = await handler.wait_for("message")
        assert [event[2] for event in messages] == ["hi"]
        assert handler.of_kind("open")[0][1].info.transport == "websocket"
        await handler.wait_for("close")


async def test_server_close_sends_close_frame() -> None:
    handler = RecordingHandler()
    async with serving(handler) as port, opened(port) as (reader, _):
        (_, session), *_ = await handler.wait_for("open")
        session.close(3000, "Go away!")
        expected = b'\x00c[3000,"Go away!"]\xff'
        assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
        # Then the closing handshake and the end of the connection.
        assert await asyncio.wait_for(reader.read(), 5) == b"\xff\x00"
        closes = await handler.wait_for("close")
        assert closes[0][2:] == (3000, "Go away!")


async def test_malformed_key_closes_without_session() -> None:
    handler = RecordingHandler()
    async with serving(handler) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(handshake(port, key1="12345"))  # digits but no spaces
            status, _ = await read_head(reader)
            assert status.startswith("HTTP/1.1 101")
            writer.write(KEY3)
            # No challenge answer and no "o" frame: the connection just ends.
            rest = await asyncio.wait_for(reader.read(), 5)
            assert ANSWER not in rest
            assert b"\x00o\xff" not in rest
        finally:
            writer.close()
            await writer.wait_closed()
    assert handler.of_kind("open") == []


async def test_plain_runner_refuses_hixie76() -> None:
    handler = RecordingHandler()
    async with serving(handler, web.AppRunner) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(handshake(port))
            writer.write(KEY3)
            status, _ = await read_head(reader)
            assert status.split()[1] == "400"
        finally:
            writer.close()
            await writer.wait_closed()
    assert handler.of_kind("open") == []


def test_challenge_response() -> None:
    assert challenge_response(KEY1, KEY2, KEY3) == ANSWER
    # The example of the draft, section 1.3.
    assert challenge_response(KEY1, KEY2, b"^n:ds[4U") == b"8jKS'y:G*Co,Wxa-"


def test_challenge_response_rejects_malformed_keys() -> None:
    assert challenge_response("12345", KEY2, KEY3) is None  # no spaces
    assert challenge_response(KEY1, "   ", KEY3) is None  # no digits
    assert challenge_response("1 2 3", KEY2, KEY3) is None  # 123 not a multiple of 2 spaces
    assert challenge_response("99999999999 ", KEY2, KEY3) is None  # over 32 bits


class FailingHandler(RecordingHandler):
    """``on_message`` raises before it awaits anything (a plain ``def`` that raises)."""

    def on_message(self, session: Session, message: str) -> None:  # type: ignore[override]
        self._record("message", session, message)
        raise RuntimeError("hook bug")


async def test_a_failing_hook_closes_with_1011_and_on_close_runs_once() -> None:
    handler = FailingHandler()
    async with serving(handler) as port:
        async with opened(port) as (reader, writer):
            writer.write(b'\x00["boom"]\xff')
            await writer.drain()
            expected = b'\x00c[1011,"Internal error"]\xff'
            assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
        await handler.wait_for("close")
        await asyncio.sleep(0.05)  # a second on_close would show up now
        assert [event[2:] for event in handler.of_kind("close")] == [(1011, "Internal error")]
