"""Raw WebSocket (``GET /websocket``): one text frame per message, no SockJS framing."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError

from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import receive_text

RAW_URL = "/sockjs/websocket"


@pytest.mark.parametrize(
    "text",
    ["hello", '["not","framed"]', "\uffff", "emoji \U0001f600", "", 'quote " and \\ slash'],
)
async def test_text_is_echoed_exactly(make_endpoint: MakeEndpoint, text: str) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with client.ws_connect(RAW_URL) as ws:
        await ws.send_str(text)
        # No "o" frame comes first: the first frame is the echo itself.
        assert await receive_text(ws) == text
    messages = await handler.wait_for("message")
    assert [event[2] for event in messages] == [text]
    opened = handler.of_kind("open")
    assert opened[0][1].info.transport == "raw-websocket"


async def test_no_heartbeat_frames_only_pings(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(heartbeat_delay=0.2)
    async with client.ws_connect(RAW_URL, autoping=False) as ws:
        # Idle: the server pings (a control frame), it never sends a text "h".
        for _ in range(2):
            msg = await ws.receive(timeout=3)
            assert msg.type is WSMsgType.PING, msg
            await ws.pong(msg.data)
        await ws.send_str("after idle")
        msg = await ws.receive(timeout=3)
        while msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
            msg = await ws.receive(timeout=3)
        assert (msg.type, msg.data) == (WSMsgType.TEXT, "after idle")


async def test_server_close_uses_websocket_close_code(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with client.ws_connect(RAW_URL) as ws:
        (_, session), *_ = await handler.wait_for("open")
        assert session.send("bye soon")
        session.close(3000, "Go away!")
        assert await receive_text(ws) == "bye soon"
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (3000, "Go away!")
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (3000, "Go away!")


async def test_sockjs_only_close_code_becomes_1000(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with client.ws_connect(RAW_URL) as ws:
        (_, session), *_ = await handler.wait_for("open")
        session.close(2999, "not a websocket code")
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1000


async def test_client_close_reaches_on_close(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with client.ws_connect(RAW_URL) as ws:
        await handler.wait_for("open")
        await ws.close(code=4002)
    closes = await handler.wait_for("close")
    assert closes[0][2] == 4002


async def test_broadcast_is_raw_for_raw_and_framed_for_sockjs(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler)
    async with (
        client.ws_connect(RAW_URL) as raw,
        client.ws_connect("/sockjs/000/framed/websocket") as framed,
    ):
        assert await receive_text(framed) == "o"
        await handler.wait_for("open", 2)
        assert endpoint.broadcast('hi "all"') == 2
        assert await receive_text(raw) == 'hi "all"'
        assert await receive_text(framed) == 'a["hi \\"all\\""]'


async def test_disabled_raw_websocket_is_404(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(disabled_transports=frozenset({"raw-websocket"}))
    with pytest.raises(WSServerHandshakeError) as excinfo:
        await client.ws_connect(RAW_URL)
    assert excinfo.value.status == 404
    # The SockJS-framed WebSocket is a different transport and still works.
    async with client.ws_connect("/sockjs/000/x/websocket") as ws:
        assert await receive_text(ws) == "o"


async def test_raw_without_upgrade_is_400(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    response = await asyncio.wait_for(client.get(RAW_URL), 5)
    assert response.status == 400
    assert 'Can "Upgrade" only to "WebSocket".' in await response.text()


async def test_client_silent_after_a_ping_is_cut_off(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, heartbeat_delay=0.2)
    async with client.ws_connect(RAW_URL, autoping=False) as ws:
        msg = await ws.receive(timeout=3)
        assert msg.type is WSMsgType.PING  # never answered
        while msg.type is WSMsgType.PING:
            msg = await ws.receive(timeout=3)
        # A close frame "No pong" if the client's kernel takes it in time, then the cut.
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR), msg
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (1006, "No pong")
    assert endpoint.stats.heartbeat_timeouts == 1
