"""eventsource: ``GET .../eventsource`` streams frames as server-sent events."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import unquote

from aiohttp import ClientResponse

from tests.conftest import MakeEndpoint, RecordingHandler

TIMEOUT = 5.0
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


async def read_event(response: ClientResponse) -> bytes:
    """One ``data: ...\\r\\n\\r\\n`` event off the open stream (b"" once it has ended)."""
    return await response.content.readuntil(b"\r\n\r\n")


def frame_of(event: bytes) -> str:
    """The SockJS frame in an event, decoded the way sockjs-client does (decodeURI)."""
    assert event.startswith(b"data: ")
    assert event.endswith(b"\r\n\r\n")
    data = event[len(b"data: ") : -len(b"\r\n\r\n")].decode()
    assert "\r" not in data
    assert "\n" not in data
    return unquote(data)


async def test_prelude_open_frame_and_headers(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await client.get("/sockjs/000/e1/eventsource")
        assert stream.status == 200
        assert await stream.content.readexactly(2) == b"\r\n"
        assert await read_event(stream) == b"data: o\r\n\r\n"
        stream.close()
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert stream.headers["Cache-Control"] == NO_CACHE
    assert stream.headers["X-Accel-Buffering"] == "no"


async def test_frames_arrive_as_events_as_they_are_sent(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await client.get("/sockjs/000/e2/eventsource")
        assert await stream.content.readexactly(2) == b"\r\n"
        assert await read_event(stream) == b"data: o\r\n\r\n"
        for text in ("one", "two"):
            sent = await client.post("/sockjs/000/e2/xhr_send", data=json.dumps([text]))
            assert sent.status == 204
            assert await read_event(stream) == f'data: a["{text}"]\r\n\r\n'.encode()
        stream.close()


async def test_percent_and_newline_are_escaped(make_endpoint: MakeEndpoint) -> None:
    tricky = "100%25 of %\nnext line\r\n%0A\u2028"
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await client.get("/sockjs/000/e3/eventsource")
        assert await stream.content.readexactly(2) == b"\r\n"
        assert await read_event(stream) == b"data: o\r\n\r\n"
        sent = await client.post("/sockjs/000/e3/xhr_send", data=json.dumps(["50% off\nnow"]))
        assert sent.status == 204
        # "%" is percent-escaped (the client runs decodeURI); the newline is a JSON escape.
        assert await read_event(stream) == b'data: a["50%25 off\\nnow"]\r\n\r\n'
        sent = await client.post("/sockjs/000/e3/xhr_send", data=json.dumps([tricky]))
        assert sent.status == 204
        frame = frame_of(await read_event(stream))
        stream.close()
    assert frame.startswith("a")
    assert json.loads(frame[1:]) == [tricky]


async def test_response_ends_at_response_limit_and_the_next_one_resumes(
    make_endpoint: MakeEndpoint,
) -> None:
    limit = 512
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, response_limit=limit)
    texts = [f"{i:02d}" + "y" * 48 for i in range(30)]
    async with asyncio.timeout(TIMEOUT):
        stream = await client.get("/sockjs/000/e4/eventsource")
        assert await stream.content.readexactly(2) == b"\r\n"
        events = [await read_event(stream)]
        delivered: list[str] = []
        while not stream.content.at_eof():
            assert len(delivered) < len(texts), "the response was never ended"
            endpoint.broadcast(texts[len(delivered)])
            event = await read_event(stream)
            events.append(event)
            delivered += json.loads(frame_of(event)[1:])
            if sum(map(len, events)) >= limit:
                assert await stream.content.read() == b""
        event_bytes = sum(map(len, events))
        assert event_bytes >= limit
        assert event_bytes - len(events[-1]) < limit
        assert delivered == texts[: len(delivered)]

        rest = texts[len(delivered) :]
        for text in rest:
            endpoint.broadcast(text)
        again = await client.get("/sockjs/000/e4/eventsource")
        assert await again.content.readexactly(2) == b"\r\n"
        frame = frame_of(await read_event(again))
        assert frame.startswith("a[")  # the session goes on: no second open frame
        assert json.loads(frame[1:]) == rest
        again.close()
    assert len(handler.of_kind("open")) == 1
