"""What every streaming transport does, tested once per transport row: xhr-streaming,
eventsource and htmlfile hold one response open, stream frames as they are sent, end the
response at ``response_limit`` and let the next one resume the session.

Each :class:`Row` says how its transport is opened and how one frame is cut off the
stream and decoded; what only one transport does (eventsource's escaping, htmlfile's
script safety and callback, xhr-streaming's CORS) is in its own test module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import NO_CACHE, TIMEOUT, json_between

Client = TestClient[web.Request, web.Application]
XHR_PRELUDE = b"h" * 2048 + b"\n"
SCRIPT_HEAD, SCRIPT_TAIL = b"<script>\np(", b");\n</script>\r\n"


def event_frame(event: bytes) -> str:
    """The SockJS frame in a server-sent event, decoded as sockjs-client does (decodeURI)."""
    assert event.startswith(b"data: ")
    assert event.endswith(b"\r\n\r\n")
    data = event[len(b"data: ") : -len(b"\r\n\r\n")].decode()
    assert "\r" not in data
    assert "\n" not in data
    return unquote(data)


def script_frame(script: bytes) -> str:
    """The frame passed to ``p(...)``, evaluated as the browser would (a JS string)."""
    literal = json_between(script, SCRIPT_HEAD, SCRIPT_TAIL)
    assert isinstance(literal, str)
    return literal


async def xhr_send(client: Client, session_id: str, *messages: str) -> None:
    """``messages`` to session ``session_id`` in one ``xhr_send``, which answers 204."""
    sent = await client.post(f"/sockjs/000/{session_id}/xhr_send", data=json.dumps(messages))
    assert sent.status == 204


@dataclass(frozen=True)
class Row:
    """One streaming transport, as a client reads it."""

    name: str
    method: str
    suffix: str  # after /sockjs/000/<session>/
    content_type: str
    #: Reads the prelude (the padding or page that comes before the first frame).
    prelude: Callable[[ClientResponse], Awaitable[bytes]]
    #: The wire bytes of the next frame, and how to decode them to the SockJS frame.
    chunk: Callable[[ClientResponse], Awaitable[bytes]]
    decode: Callable[[bytes], str]

    async def open(self, client: Client, session_id: str) -> ClientResponse:
        """Open the stream and read its prelude and ``o`` frame."""
        stream = await client.request(self.method, f"/sockjs/000/{session_id}/{self.suffix}")
        assert stream.status == 200
        await self.prelude(stream)
        assert self.decode(await self.chunk(stream)) == "o"
        return stream

    async def frame(self, stream: ClientResponse) -> str:
        return self.decode(await self.chunk(stream))


ROWS = [
    Row(
        "xhr_streaming",
        "POST",
        "xhr_streaming",
        "application/javascript; charset=UTF-8",
        prelude=lambda r: r.content.readexactly(len(XHR_PRELUDE)),
        chunk=lambda r: r.content.readuntil(b"\n"),
        decode=lambda chunk: chunk.removesuffix(b"\n").decode(),
    ),
    Row(
        "eventsource",
        "GET",
        "eventsource",
        "text/event-stream",
        prelude=lambda r: r.content.readexactly(2),
        chunk=lambda r: r.content.readuntil(b"\r\n\r\n"),
        decode=event_frame,
    ),
    Row(
        "htmlfile",
        "GET",
        "htmlfile?c=cb",
        "text/html; charset=UTF-8",
        prelude=lambda r: r.content.readuntil(b"\r\n\r\n"),
        chunk=lambda r: r.content.readuntil(SCRIPT_TAIL),
        decode=script_frame,
    ),
]

#: The rows by transport name, for the modules of one transport.
ROW = {row.name: row for row in ROWS}

pytestmark = pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])


async def test_open_frame_then_frames_as_they_are_sent(
    make_endpoint: MakeEndpoint, row: Row
) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await row.open(client, "s1")
        for text in ("one", "two"):
            await xhr_send(client, "s1", text)
            assert await row.frame(stream) == f'a["{text}"]'
        stream.close()
    assert stream.headers["Content-Type"] == row.content_type
    assert stream.headers["Cache-Control"] == NO_CACHE


async def test_response_ends_at_response_limit_and_the_next_one_resumes(
    make_endpoint: MakeEndpoint, row: Row
) -> None:
    limit = 1024
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, response_limit=limit)
    texts = [f"{i:03d}" + "x" * 97 for i in range(40)]
    async with asyncio.timeout(TIMEOUT):
        stream = await client.request(row.method, f"/sockjs/000/rl/{row.suffix}")
        await row.prelude(stream)
        chunks = [await row.chunk(stream)]
        delivered: list[str] = []
        # One message at a time, so each arrives as its own frame.
        while not stream.content.at_eof():
            assert len(delivered) < len(texts), "the response was never ended"
            endpoint.broadcast(texts[len(delivered)])
            chunk = await row.chunk(stream)
            chunks.append(chunk)
            delivered += json.loads(row.decode(chunk)[1:])
            if sum(map(len, chunks)) >= limit:
                assert await stream.content.read() == b""
        total = sum(map(len, chunks))
        assert total >= limit
        assert total - len(chunks[-1]) < limit  # it ended after the first frame over
        assert delivered == texts[: len(delivered)]

        # The session outlives its response: what is sent meanwhile waits for the next one.
        rest = texts[len(delivered) :]
        for text in rest:
            endpoint.broadcast(text)
        again = await client.request(row.method, f"/sockjs/000/rl/{row.suffix}")
        await row.prelude(again)
        frame = await row.frame(again)
        assert frame.startswith("a[")  # no second open frame
        assert json.loads(frame[1:]) == rest
        again.close()
    assert len(handler.of_kind("open")) == 1
