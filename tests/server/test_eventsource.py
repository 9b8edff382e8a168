"""eventsource: ``GET .../eventsource`` streams frames as server-sent events.

What every streaming transport does is in test_streaming.py; here, what only this one
does: its prelude and headers, and the escaping its client needs."""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientResponse

from tests.conftest import MakeEndpoint
from tests.helpers import NO_CACHE, TIMEOUT
from tests.server.test_streaming import ROW, event_frame, xhr_send


async def read_event(response: ClientResponse) -> bytes:
    """One ``data: ...\\r\\n\\r\\n`` event off the open stream (b"" once it has ended)."""
    return await response.content.readuntil(b"\r\n\r\n")


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


async def test_percent_and_newline_are_escaped(make_endpoint: MakeEndpoint) -> None:
    tricky = "100%25 of %\nnext line\r\n%0A\u2028"
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await ROW["eventsource"].open(client, "e3")
        await xhr_send(client, "e3", "50% off\nnow")
        # "%" is percent-escaped (the client runs decodeURI); the newline is a JSON escape.
        assert await read_event(stream) == b'data: a["50%25 off\\nnow"]\r\n\r\n'
        await xhr_send(client, "e3", tricky)
        frame = event_frame(await read_event(stream))
        stream.close()
    assert frame.startswith("a")
    assert json.loads(frame[1:]) == [tricky]
