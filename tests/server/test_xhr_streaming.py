"""xhr-streaming: ``POST .../xhr_streaming`` holds one response open and streams frames."""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientResponse

from tests.conftest import MakeEndpoint, RecordingHandler

TIMEOUT = 5.0
PRELUDE = b"h" * 2048 + b"\n"
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


async def read_frame(response: ClientResponse) -> bytes:
    """One ``frame\\n`` off the open stream (b"" once the response has ended)."""
    return await response.content.readuntil(b"\n")


async def test_prelude_then_open_then_frames_as_they_are_sent(
    make_endpoint: MakeEndpoint,
) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await client.post("/sockjs/000/s1/xhr_streaming")
        assert stream.status == 200
        assert await stream.content.readexactly(len(PRELUDE)) == PRELUDE
        assert await read_frame(stream) == b"o\n"
        for text in ("first", "second"):
            sent = await client.post("/sockjs/000/s1/xhr_send", data=json.dumps([text]))
            assert sent.status == 204
            assert await read_frame(stream) == f'a["{text}"]\n'.encode()
        stream.close()


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


async def test_response_ends_at_response_limit_and_the_session_goes_on(
    make_endpoint: MakeEndpoint,
) -> None:
    limit = 4096
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, response_limit=limit)
    texts = [f"{i:03d}" + "x" * 127 for i in range(40)]  # 130 characters each
    async with asyncio.timeout(TIMEOUT):
        stream = await client.post("/sockjs/000/rl/xhr_streaming")
        assert await stream.content.readexactly(len(PRELUDE)) == PRELUDE
        frames = [await read_frame(stream)]
        assert frames == [b"o\n"]
        delivered: list[str] = []
        sent_count = 0
        # One message per round trip, so each arrives as its own frame.
        while not stream.content.at_eof():
            sent = await client.post(
                "/sockjs/000/rl/xhr_send", data=json.dumps([texts[sent_count]])
            )
            assert sent.status == 204
            sent_count += 1
            frame = await read_frame(stream)
            frames.append(frame)
            delivered += json.loads(frame[1:])
            assert sent_count < len(texts), "the response was never ended"
            if sum(map(len, frames)) >= limit:
                assert await stream.content.read() == b""
        frame_bytes = sum(map(len, frames))
        assert frame_bytes >= limit
        assert frame_bytes - len(frames[-1]) < limit  # it ended after the first frame over
        assert delivered == texts[:sent_count]

        # The session outlives its response: what is sent meanwhile waits for the next one.
        for text in texts[sent_count:]:
            endpoint.broadcast(text)
        again = await client.post("/sockjs/000/rl/xhr_streaming")
        assert await again.content.readexactly(len(PRELUDE)) == PRELUDE
        frame = await read_frame(again)
        assert frame.startswith(b"a[")  # no second open frame
        assert json.loads(frame[1:]) == texts[sent_count:]
        again.close()
    assert len(handler.of_kind("open")) == 1


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
