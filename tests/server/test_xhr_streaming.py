"""xhr-streaming: ``POST .../xhr_streaming`` holds one response open and streams frames.

What every streaming transport does is in test_streaming.py; here, its headers (CORS)
and the answer to a second stream."""

from __future__ import annotations

import asyncio

from aiohttp import ClientResponse

from tests.conftest import MakeEndpoint
from tests.helpers import NO_CACHE, TIMEOUT

PRELUDE = b"h" * 2048 + b"\n"


async def read_frame(response: ClientResponse) -> bytes:
    """One ``frame\\n`` off the open stream (b"" once the response has ended)."""
    return await response.content.readuntil(b"\n")


async def test_stream_headers_disable_caching_and_proxy_buffering(
    make_endpoint: MakeEndpoint,
) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await client.post(
            "/sockjs/000/s2/xhr_streaming", headers={"Origin": "https://app.example"}
        )
        assert await stream.content.readexactly(len(PRELUDE)) == PRELUDE
        stream.close()
    assert stream.headers["Content-Type"] == "application/javascript; charset=UTF-8"
    assert stream.headers["X-Accel-Buffering"] == "no"
    assert stream.headers["Cache-Control"] == NO_CACHE
    assert stream.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert stream.headers["Access-Control-Allow-Credentials"] == "true"


async def test_second_stream_is_refused_and_the_first_keeps_working(
    make_endpoint: MakeEndpoint,
) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        first = await client.post("/sockjs/000/two/xhr_streaming")
        assert await first.content.readexactly(len(PRELUDE)) == PRELUDE
        assert await read_frame(first) == b"o\n"

        second = await client.post("/sockjs/000/two/xhr_streaming")
        assert await second.read() == PRELUDE + b'c[2010,"Another connection still open"]\n'

        sent = await client.post("/sockjs/000/two/xhr_send", data='["still here"]')
        assert sent.status == 204
        assert await read_frame(first) == b'a["still here"]\n'
        first.close()
