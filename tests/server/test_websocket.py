"""SockJS-framed WebSocket: ``GET /{server}/{session}/websocket`` with ``o``/``a``/``h``/``c``
frames, against a real server and aiohttp's WebSocket client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, WSServerHandshakeError, web
from aiohttp.test_utils import TestClient

from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import receive_text, wait_until

WS_URL = "/sockjs/000/{}/websocket"
Client = TestClient[web.Request, web.Application]


@asynccontextmanager
async def opened(client: Client, session: str) -> AsyncIterator[ClientWebSocketResponse[Any]]:
    """A SockJS WebSocket of session ``session``, past its open frame."""
    async with client.ws_connect(WS_URL.format(session)) as ws:
        assert await receive_text(ws) == "o"
        yield ws


async def receive_messages(ws: ClientWebSocketResponse[Any], count: int) -> list[str]:
    """Decode ``a[...]`` frames (skipping heartbeats) until ``count`` messages arrived."""
    messages: list[str] = []
    while len(messages) < count:
        frame = await receive_text(ws)
        if frame == "h":
            continue
        assert frame.startswith("a["), frame
        messages.extend(json.loads(frame[1:]))
    return messages


@pytest.mark.parametrize(
    ("frames", "messages"),
    [
        pytest.param(['["a","b"]'], ["a", "b"], id="an-array-is-each-of-its-messages"),
        pytest.param(['"x"'], ["x"], id="a-bare-json-string-is-one-message"),
        pytest.param(["", "[]", '["after"]'], ["after"], id="empty-frame-and-array-are-ignored"),
    ],
)
async def test_messages_are_heard_and_echoed(
    make_endpoint: MakeEndpoint, frames: list[str], messages: list[str]
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with opened(client, "echo") as ws:
        for frame in frames:
            await ws.send_str(frame)
        assert await receive_messages(ws, len(messages)) == messages
        assert not ws.closed
    heard = await handler.wait_for("message", len(messages))
    assert [event[2] for event in heard] == messages


@pytest.mark.parametrize(
    ("payload", "reason"),
    [('["a', "Broken JSON encoding."), ("[1]", "Payload expected."), ("{}", "Payload expected.")],
)
async def test_bad_frame_closes_with_1007(
    make_endpoint: MakeEndpoint, payload: str, reason: str
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with opened(client, "bad") as ws:
        await ws.send_str(payload)
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1007
        assert msg.extra == reason
    closes = await handler.wait_for("close")
    assert [event[2:] for event in closes] == [(1007, reason)]
    assert handler.of_kind("message") == []


async def test_binary_frame_closes_with_1003(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with opened(client, "bin") as ws:
        await ws.send_bytes(b'["a"]')
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1003
    closes = await handler.wait_for("close")
    assert closes[0][2] == 1003
    assert handler.of_kind("message") == []


async def test_two_sockets_may_share_a_session_id(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with (
        client.ws_connect(WS_URL.format("same")) as first,
        client.ws_connect(WS_URL.format("same")) as second,
    ):
        assert await receive_text(first) == "o"
        assert await receive_text(second) == "o"
        await first.send_str('["one"]')
        await second.send_str('["two"]')
        assert await receive_text(first) == 'a["one"]'
        assert await receive_text(second) == 'a["two"]'
        # Neither got the other's echo: the next frame on each is its own next echo.
        await first.send_str('["one-again"]')
        await second.send_str('["two-again"]')
        assert await receive_text(first) == 'a["one-again"]'
        assert await receive_text(second) == 'a["two-again"]'
    opened = await handler.wait_for("open", 2)
    assert opened[0][1] is not opened[1][1]
    assert {event[1].id for event in opened} == {"same"}


async def test_client_close_reaches_on_close_with_its_code(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler)
    async with opened(client, "bye") as ws:
        await handler.wait_for("open")
        await ws.close(code=4001, message=b"done")
    closes = await handler.wait_for("close")
    assert closes[0][2] == 4001
    session = closes[0][1]
    assert session.closed
    await wait_until(lambda: endpoint.session_count == 0, timeout=2)


async def test_server_close_sends_close_frame_then_closes(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with opened(client, "kick") as ws:
        (_, session), *_ = await handler.wait_for("open")
        session.close(3000, "Go away!")
        assert await receive_text(ws) == 'c[3000,"Go away!"]'
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (3000, "Go away!")


async def test_messages_sent_before_close_arrive_first(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with opened(client, "order") as ws:
        (_, session), *_ = await handler.wait_for("open")
        assert session.send("last words")
        session.close()
        frames = [await receive_text(ws), await receive_text(ws)]
        assert frames == ['a["last words"]', 'c[3000,"Go away!"]']


async def test_heartbeat_when_idle(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(heartbeat_delay=0.2)
    async with opened(client, "hb") as ws:
        assert await receive_text(ws, timeout=3) == "h"
        assert await receive_text(ws, timeout=3) == "h"
        await ws.send_str('["still here"]')
        assert await receive_messages(ws, 1) == ["still here"]


async def test_oversized_message_closes_with_1009(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, max_message_bytes=100)
    async with opened(client, "big") as ws:
        await ws.send_str(json.dumps(["x" * 50]))
        assert await receive_messages(ws, 1) == ["x" * 50]
        await ws.send_str(json.dumps(["x" * 200]))
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1009
    await handler.wait_for("close")
    assert [event[2] for event in handler.of_kind("message")] == ["x" * 50]


async def test_get_without_upgrade_is_400(make_endpoint: MakeEndpoint) -> None:
    client, endpoint = await make_endpoint()
    response = await client.get(WS_URL.format("plain"))
    assert response.status == 400
    assert 'Can "Upgrade" only to "WebSocket".' in await response.text()
    assert endpoint.session_count == 0


async def test_connection_close_is_400(make_endpoint: MakeEndpoint) -> None:
    client, endpoint = await make_endpoint()
    response = await client.get(
        WS_URL.format("conn"), headers={"Upgrade": "websocket", "Connection": "close"}
    )
    assert response.status == 400
    assert '"Connection" must be "Upgrade".' in await response.text()
    assert endpoint.session_count == 0


@pytest.mark.parametrize(
    ("version", "key", "problem"),
    [
        ("12", "dGhlIHNhbXBsZSBub25jZQ==", "Unsupported version: 12"),
        ("13", "", "Handshake error: ''"),
        ("13", "c2hvcnQ=", "Handshake error: 'c2hvcnQ='"),  # 5 bytes, not 16
    ],
)
@pytest.mark.parametrize("path", [WS_URL.format("bad"), "/sockjs/websocket"])
async def test_malformed_handshake_is_400_naming_the_problem(
    make_endpoint: MakeEndpoint, path: str, version: str, key: str, problem: str
) -> None:
    client, endpoint = await make_endpoint()
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": version}
    if key:
        headers["Sec-WebSocket-Key"] = key
    response = await client.get(path, headers=headers)
    assert response.status == 400
    assert problem in await response.text()
    assert response.headers["Sec-WebSocket-Version"] == "13"  # RFC 6455 4.4
    assert endpoint.session_count == 0


async def test_post_is_405(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    response = await client.post(WS_URL.format("post"))
    assert response.status == 405


async def test_disabled_websocket_is_404(make_endpoint: MakeEndpoint) -> None:
    client, endpoint = await make_endpoint(disabled_transports=frozenset({"websocket"}))
    with pytest.raises(WSServerHandshakeError) as excinfo:
        await client.ws_connect(WS_URL.format("off"))
    assert excinfo.value.status == 404
    info = await (await client.get("/sockjs/info")).json()
    assert info["websocket"] is False
    assert endpoint.session_count == 0
