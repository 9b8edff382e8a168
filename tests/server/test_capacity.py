"""Per-endpoint and per-message limits against a real server: session id charset and
length, ``max_sessions`` (503 past it), and ``max_message_bytes`` on WebSocket messages
(also permessage-deflate ones, which must not be inflated past the limit) and on chunked
``jsonp_send`` bodies. (Content-Length and chunked ``xhr_send`` bodies: test_limits.py.)"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError, web
from aiohttp.test_utils import TestClient

from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT, wait_until
from tests.wsframes import TEXT, client_frame

Client = TestClient[web.Request, web.Application]


async def status_of(client: Client, method: str, path: str, data: Any = None) -> tuple[int, str]:
    async with asyncio.timeout(TIMEOUT):
        response = await client.request(method, path, data=data)
        return response.status, await response.text()


# -- session ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "session_id",
    [
        "%C3%A9t%C3%A9",  # non-ASCII
        "caf%C3%A9",
        "%E2%80%A8",
        "a%2Fb",  # '/' percent-encoded still cannot be part of an id
        "%2F",
        "a%00b",  # control characters
        "a%0Ab",
        "a%7Fb",
        "a%2Eb",  # '.' percent-encoded
    ],
)
async def test_session_ids_outside_the_charset_are_404(
    make_endpoint: MakeEndpoint, session_id: str
) -> None:
    client, endpoint = await make_endpoint()
    assert (await status_of(client, "POST", f"/sockjs/000/{session_id}/xhr"))[0] == 404
    with pytest.raises(WSServerHandshakeError) as refused:
        await asyncio.wait_for(client.ws_connect(f"/sockjs/000/{session_id}/websocket"), TIMEOUT)
    assert refused.value.status == 404
    assert (await status_of(client, "POST", f"/sockjs/{session_id}/abc/xhr"))[0] == 404
    assert endpoint.session_count == 0


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("a%20b", "a b"),
        ("%20", " "),
        ("~!$&'()*+,;=:@-_", None),
        ("%22%3C%3E%5C%5E%60%7C", '"<>\\^`|'),
        ("%7Bid%7D", "{id}"),  # braces are printable ASCII too
    ],
)
async def test_printable_ascii_ids_are_accepted(
    make_endpoint: MakeEndpoint, encoded: str, decoded: str | None
) -> None:
    client, endpoint = await make_endpoint()
    assert await status_of(client, "POST", f"/sockjs/000/{encoded}/xhr") == (200, "o\n")
    assert await status_of(client, "POST", f"/sockjs/000/{encoded}/xhr_send", '["x"]') == (
        204,
        "",
    )
    assert await status_of(client, "POST", f"/sockjs/000/{encoded}/xhr") == (200, 'a["x"]\n')
    assert endpoint.registry.get(decoded or encoded) is not None


async def test_id_length_limits_apply_to_server_and_session_ids(
    make_endpoint: MakeEndpoint,
) -> None:
    client, endpoint = await make_endpoint(max_session_id_length=8)
    assert (await status_of(client, "POST", "/sockjs/" + "s" * 9 + "/sid/xhr"))[0] == 404
    assert (await status_of(client, "POST", "/sockjs/000/" + "i" * 9 + "/xhr"))[0] == 404
    with pytest.raises(WSServerHandshakeError) as refused:
        await asyncio.wait_for(client.ws_connect("/sockjs/000/" + "w" * 9 + "/websocket"), TIMEOUT)
    assert refused.value.status == 404
    assert endpoint.session_count == 0
    assert await status_of(client, "POST", "/sockjs/" + "s" * 8 + "/" + "i" * 8 + "/xhr") == (
        200,
        "o\n",
    )
    async with client.ws_connect("/sockjs/" + "s" * 8 + "/" + "w" * 8 + "/websocket") as ws:
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"


# -- max_sessions ------------------------------------------------------------------------------


async def test_max_sessions_refuses_new_sessions_with_503(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, max_sessions=3, disconnect_delay=1.0)
    assert await status_of(client, "POST", "/sockjs/000/poller/xhr") == (200, "o\n")
    # A waiting long poll keeps the polling session from expiring during the checks.
    waiting = asyncio.ensure_future(status_of(client, "POST", "/sockjs/000/poller/xhr"))
    try:
        async with (
            client.ws_connect("/sockjs/000/ws1/websocket") as ws1,
            client.ws_connect("/sockjs/websocket") as raw,
        ):
            assert (await ws1.receive(timeout=TIMEOUT)).data == "o"
            await handler.wait_for("open", 3)
            await wait_until(lambda: all(s.machine.attached for s in endpoint.registry))
            assert endpoint.session_count == 3
            # A fourth session, on any transport, is refused.
            for path in ("/sockjs/000/fourth/xhr", "/sockjs/000/fourth/xhr_streaming"):
                assert await status_of(client, "POST", path) == (503, "Too many sessions.")
            assert (await status_of(client, "GET", "/sockjs/000/fourth/eventsource"))[0] == 503
            for path in ("/sockjs/000/fourth/websocket", "/sockjs/websocket"):
                with pytest.raises(WSServerHandshakeError) as refused:
                    await asyncio.wait_for(client.ws_connect(path), TIMEOUT)
                assert refused.value.status == 503
            assert endpoint.session_count == 3
            assert endpoint.stats.refused["capacity"] == 5
            # The sessions already there keep working.
            await ws1.send_str('["one"]')
            assert (await ws1.receive(timeout=TIMEOUT)).data == 'a["one"]'
            await raw.send_str("two")
            assert (await raw.receive(timeout=TIMEOUT)).data == "two"
            assert await status_of(client, "POST", "/sockjs/000/poller/xhr_send", '["3"]') == (
                204,
                "",
            )
            assert await asyncio.wait_for(waiting, TIMEOUT) == (200, 'a["3"]\n')
            # Once the polling session expires, its place is free.
            closes = await handler.wait_for("close")
            assert (closes[0][1].id, *closes[0][2:]) == ("poller", 1000, "Session timed out")
            await wait_until(lambda: endpoint.session_count == 2)
            assert await status_of(client, "POST", "/sockjs/000/fifth/xhr") == (200, "o\n")
            assert (await status_of(client, "POST", "/sockjs/000/sixth/xhr"))[0] == 503
    finally:
        waiting.cancel()
    # Closed WebSockets free their places at once.
    await wait_until(lambda: all(s.info.transport == "xhr-polling" for s in endpoint.registry))
    assert await status_of(client, "POST", "/sockjs/000/seventh/xhr") == (200, "o\n")


async def test_a_closed_session_holds_its_place_until_forgotten(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, max_sessions=1, disconnect_delay=1.0)
    assert await status_of(client, "POST", "/sockjs/000/first/xhr") == (200, "o\n")
    (_, session), *_ = await handler.wait_for("open")
    session.close(3000, "Go away!")
    assert await status_of(client, "POST", "/sockjs/000/second/xhr") == (
        503,
        "Too many sessions.",
    )
    assert await status_of(client, "POST", "/sockjs/000/first/xhr") == (
        200,
        'c[3000,"Go away!"]\n',
    )
    await wait_until(lambda: endpoint.session_count == 0)
    assert await status_of(client, "POST", "/sockjs/000/second/xhr") == (200, "o\n")


# -- max_message_bytes on WebSocket, compressed or not ------------------------------------------


@pytest.mark.parametrize("path", ["/sockjs/000/defl/websocket", "/sockjs/websocket"])
async def test_compressed_message_over_the_limit_closes_with_1009(
    make_endpoint: MakeEndpoint, path: str
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(
        handler, max_message_bytes=64 * 1024, websocket_compression=True
    )
    raw = path == "/sockjs/websocket"
    async with client.ws_connect(path, compress=15) as ws:
        assert ws.compress == 15  # permessage-deflate was negotiated
        if not raw:
            assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        small = json.dumps(["y" * 1000]) if not raw else "y" * 1000
        await ws.send_str(small)
        echoed = (await ws.receive(timeout=TIMEOUT)).data
        assert echoed == (small if raw else "a" + small)
        # Compresses to about 8 KiB, far under the limit; inflates to 8 MiB.
        bomb = "x" * (8 * 1024 * 1024)
        await ws.send_str(json.dumps([bomb]) if not raw else bomb)
        msg = await ws.receive(timeout=TIMEOUT)
        while msg.type is WSMsgType.TEXT and msg.data == "h":
            msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type is WSMsgType.CLOSE, msg
        assert msg.data == 1009
    await handler.wait_for("close")
    expected = small if raw else json.loads(small)[0]
    assert [event[2] for event in handler.of_kind("message")] == [expected]
    await wait_until(lambda: endpoint.session_count == 0)


@pytest.mark.parametrize("compress", [0, 15])
async def test_on_close_learns_1009_for_a_message_over_the_limit(
    make_endpoint: MakeEndpoint, compress: int
) -> None:
    """As for 1007 and 1003, the handler hears why the server closed the socket."""
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, max_message_bytes=1024)
    async with client.ws_connect("/sockjs/000/big/websocket", compress=compress) as ws:
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        await ws.send_str(json.dumps(["z" * 4096]))
        msg = await ws.receive(timeout=TIMEOUT)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1009)
    closes = await handler.wait_for("close")
    assert closes[0][2] == 1009, closes[0][2:]


@pytest.mark.parametrize("path", ["/sockjs/000/edge/websocket", "/sockjs/websocket"])
async def test_websocket_message_at_the_limit_is_accepted(
    make_endpoint: MakeEndpoint, path: str
) -> None:
    """``max_message_bytes`` is the largest accepted message, as for ``xhr_send``."""
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, max_message_bytes=100)
    raw = path == "/sockjs/websocket"
    at_limit = "e" * 100 if raw else json.dumps(["e" * 96])
    over = "o" * 101 if raw else json.dumps(["o" * 97])
    assert (len(at_limit), len(over)) == (100, 101)
    async with client.ws_connect(path) as ws:
        if not raw:
            assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        await ws.send_str(at_limit)
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type is WSMsgType.TEXT, msg
        assert msg.data == (at_limit if raw else "a" + at_limit)
        await ws.send_str(over)
        msg = await ws.receive(timeout=TIMEOUT)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1009)


async def frames_from(sock: socket.socket, buffered: bytes) -> AsyncIterator[tuple[int, bytes]]:
    """Server frames (opcode, payload) read from ``sock``, after ``buffered`` bytes."""
    loop = asyncio.get_running_loop()
    data = buffered

    async def need(count: int) -> None:
        nonlocal data
        while len(data) < count:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise EOFError
            data += chunk

    while True:
        await need(2)
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if length == 126:
            await need(4)
            (length,) = struct.unpack("!H", data[2:4])
            offset = 4
        elif length == 127:
            await need(10)
            (length,) = struct.unpack("!Q", data[2:10])
            offset = 10
        await need(offset + length)
        yield opcode, data[offset : offset + length]
        data = data[offset + length :]


async def test_deflate_bomb_is_not_inflated_past_the_limit(make_endpoint: MakeEndpoint) -> None:
    """64 MiB that deflate to 64 KiB: the server stops inflating at the limit (1 MiB)."""
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(
        handler, max_message_bytes=1024 * 1024, websocket_compression=True
    )
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    inflated = b'["' + b"x" * (64 * 1024 * 1024) + b'"]'
    bomb = deflate.compress(inflated) + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert bomb.endswith(b"\0\0\xff\xff")
    assert len(bomb) < 128 * 1024
    bomb = bomb[:-4]  # RFC 7692: the sender strips the sync-flush tail
    del inflated
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    tracemalloc.start()
    try:
        sock.setblocking(False)
        async with asyncio.timeout(TIMEOUT * 2):
            assert client.port is not None
            await loop.sock_connect(sock, ("127.0.0.1", client.port))
            await loop.sock_sendall(
                sock,
                b"GET /sockjs/000/bomb/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            )
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await loop.sock_recv(sock, 4096)
                assert chunk
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            assert b"permessage-deflate" in head.lower()
            await handler.wait_for("open")
            tracemalloc.reset_peak()
            await loop.sock_sendall(sock, client_frame(TEXT, bomb, rsv=0x40))  # RSV1: deflated
            close_code = None
            async for opcode, payload in frames_from(sock, rest):
                if opcode == 0x8:
                    (close_code,) = struct.unpack("!H", payload[:2])
                    break
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sock.close()
    assert close_code == 1009
    await handler.wait_for("close")
    assert handler.of_kind("message") == []
    # Inflating the whole message would have cost 64 MiB at least.
    assert peak < 8 * 1024 * 1024, peak
    await wait_until(lambda: endpoint.session_count == 0)


# -- max_message_bytes on chunked jsonp_send bodies -----------------------------------------------


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b"d=" + b"x" * (size - 2)
    for _ in range(total // size - 1):
        yield b"x" * size


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
async def test_chunked_jsonp_send_over_the_limit_is_413(
    make_endpoint: MakeEndpoint, content_type: str
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, max_message_bytes=100 * 1024)
    async with asyncio.timeout(TIMEOUT):
        opened = await client.get("/sockjs/000/jp/jsonp?c=cb")
        assert await opened.text() == '/**/cb("o");\r\n'
        sent = await client.post(
            "/sockjs/000/jp/jsonp_send",
            data=chunks(1024 * 1024),
            headers={"Content-Type": content_type},
        )
        assert "Content-Length" not in sent.request_info.headers
        assert sent.status == 413
        assert await sent.text() == "Payload too large."
        sent.close()
        ok = await client.post(
            "/sockjs/000/jp/jsonp_send",
            data='d=["fine"]',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (ok.status, await ok.text()) == (200, "ok")
    messages = await handler.wait_for("message")
    assert [event[2] for event in messages] == ["fine"]
