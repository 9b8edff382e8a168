"""The runner the command line uses closes connections whose request headers do not
arrive in time (slowloris), and nothing else: requests that take long to answer, long
polls and WebSockets live on. Real sockets against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from sockjs_gateway import add_endpoint
from sockjs_gateway.logs import refusal
from sockjs_gateway.server.runner import GatewayRunner
from tests.conftest import RecordingHandler

HEADER_TIMEOUT = 0.5
TIMEOUT = 10.0
SLOW_CLIENTS = 20


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(HEADER_TIMEOUT * 3)
    return web.Response(text="slow answer")


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/slow", _slow)
    app.router.add_get("/fast", _fast)
    add_endpoint(app, RecordingHandler(), prefix="/echo", options=None)
    runner = GatewayRunner(app, header_timeout=HEADER_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _fast(request: web.Request) -> web.Response:
    return web.Response(text="fast")


async def slowloris(port: int) -> int:
    """Send a request's headers one byte at a time, every HEADER_TIMEOUT / 5 seconds,
    until the server closes; return how many bytes went out (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /fast HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
    sent = 0
    try:
        for byte in request:  # at most ~200 bytes: 8 s, 16 header timeouts
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1), HEADER_TIMEOUT / 5) == b"":
                    return sent
        raise AssertionError("the server never closed the slow connection")
    except ConnectionError:
        return sent
    finally:
        writer.close()


async def test_slowloris_connections_are_closed(caplog: pytest.LogCaptureFixture) -> None:
    refusal.reset()
    with caplog.at_level(logging.WARNING, "sockjs_gateway"):
        async with serving() as port:
            sent = await asyncio.wait_for(
                asyncio.gather(*(slowloris(port) for _ in range(SLOW_CLIENTS))), TIMEOUT * 2
            )
            # None got anywhere near a whole header block; the server still serves.
            assert max(sent) < 100
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/fast") as response,
            ):
                assert await response.text() == "fast"
    lines = [r.getMessage() for r in caplog.records if "headers not complete" in r.getMessage()]
    assert len(lines) == 1  # one line, rate-limited, for 20 connections
    assert lines[0].endswith(f"within {HEADER_TIMEOUT:g} s")


async def test_headers_split_into_many_packets_in_time_are_served() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for byte in b"GET /fast HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
            answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(b"fast")


async def test_slow_answers_long_polls_and_websockets_outlive_the_header_timeout() -> None:
    async with serving() as port, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}"
        async with http.get(url + "/slow") as response:
            assert await response.text() == "slow answer"
        async with http.ws_connect(url + "/echo/000/ws/websocket") as ws:
            assert (await ws.receive(timeout=TIMEOUT)).data == "o"
            await asyncio.sleep(HEADER_TIMEOUT * 3)
            await ws.send_str('["still here"]')
            assert (await ws.receive(timeout=TIMEOUT)).data == 'a["still here"]'
        async with http.post(url + "/echo/000/poll/xhr") as response:
            assert await response.text() == "o\n"
        poll = asyncio.ensure_future(http.post(url + "/echo/000/poll/xhr"))
        await asyncio.sleep(HEADER_TIMEOUT * 3)  # the long poll waits past the timeout
        async with http.post(url + "/echo/000/poll/xhr_send", data='["late"]') as sent:
            assert sent.status == 204
        async with await asyncio.wait_for(poll, TIMEOUT) as response:
            assert await response.text() == 'a["late"]\n'
