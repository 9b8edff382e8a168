"""Sessions over TLS: aiohttp serving https and wss itself (no proxy in front). The
server's own WebSocket connection sits on asyncio's TLS transport, which has no
half-close and reads through its own buffers, so it gets a run of its own here."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import ClientSession, WSMsgType, web

from sockjs_gateway import SockJSOptions, add_endpoint
from tests.conftest import RecordingHandler
from tests.helpers import TIMEOUT


@pytest.fixture
async def tls_server() -> AsyncIterator[tuple[str, ssl.SSLContext, RecordingHandler]]:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    handler = RecordingHandler()
    app = web.Application()
    add_endpoint(
        app,
        handler,
        prefix="/sockjs",
        options=SockJSOptions(allowed_origins=("*",), max_message_bytes=1024 * 1024),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}", client_context, handler
    finally:
        await runner.cleanup()


async def test_websocket_session_over_wss(
    tls_server: tuple[str, ssl.SSLContext, RecordingHandler],
) -> None:
    host, context, handler = tls_server
    big = "\u00e9" * 200_000  # 400 KB of UTF-8: many TLS records each way
    async with (
        ClientSession() as http,
        http.ws_connect(f"wss://{host}/sockjs/000/tls/websocket", ssl=context) as ws,
    ):
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        await ws.send_str(json.dumps(["hello", big], ensure_ascii=False))
        assert (await ws.receive(timeout=TIMEOUT)).data == 'a["hello"]'
        assert json.loads((await ws.receive(timeout=TIMEOUT)).data[1:]) == [big]
        await ws.send_str('["broken')
        msg = await ws.receive(timeout=TIMEOUT)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1007)
    closes = await handler.wait_for("close")
    assert closes[0][2] == 1007
    assert [event[2] for event in handler.of_kind("message")] == ["hello", big]


async def test_server_close_over_wss(
    tls_server: tuple[str, ssl.SSLContext, RecordingHandler],
) -> None:
    host, context, handler = tls_server
    async with (
        ClientSession() as http,
        http.ws_connect(f"wss://{host}/sockjs/000/tls2/websocket", ssl=context) as ws,
    ):
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        session = (await handler.wait_for("open"))[0][1]
        session.close(3000, "Go away!")
        assert (await ws.receive(timeout=TIMEOUT)).data == 'c[3000,"Go away!"]'
        msg = await ws.receive(timeout=TIMEOUT)
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 3000, "Go away!")
    await asyncio.wait_for(handler.wait_for("close"), TIMEOUT)


async def test_xhr_streaming_over_https(
    tls_server: tuple[str, ssl.SSLContext, RecordingHandler],
) -> None:
    host, context, _ = tls_server
    async with ClientSession() as http:
        stream = await http.post(f"https://{host}/sockjs/000/tls3/xhr_streaming", ssl=context)
        prelude = await asyncio.wait_for(stream.content.readline(), TIMEOUT)
        assert prelude == b"h" * 2048 + b"\n"
        assert await asyncio.wait_for(stream.content.readline(), TIMEOUT) == b"o\n"
        sent = await http.post(
            f"https://{host}/sockjs/000/tls3/xhr_send", data='["over tls"]', ssl=context
        )
        assert sent.status == 204
        line = await asyncio.wait_for(stream.content.readline(), TIMEOUT)
        assert line == b'a["over tls"]\n'
        stream.close()
