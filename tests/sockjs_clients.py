"""One SockJS session seen from the client, over any transport, on the wire.

The contract suites use this to run one check over every transport: ``open`` reads the
open frame, ``send`` posts messages the way sockjs-client does on that transport, and
``next_frame`` returns the next frame ("a[...]" or "c[...]"; heartbeats are skipped)
whatever the framing (WebSocket messages, newline-delimited streams, server-sent events,
script tags, JSONP callbacks, or one frame per poll). A raw WebSocket has no SockJS
framing: its messages come back as "a[...]" frames and its close as "c[...]", so the
checks read the same.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any
from urllib.parse import unquote

from aiohttp import ClientResponse, ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient

__all__ = ["TRANSPORTS", "SockJSClient"]

#: Every transport a client can pick, by the name the tests use.
TRANSPORTS = (
    "websocket",
    "websocket-deflate",
    "raw-websocket",
    "xhr-streaming",
    "xhr-polling",
    "eventsource",
    "htmlfile",
    "jsonp-polling",
)
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class SockJSClient:
    """One session over ``transport`` on the endpoint at ``prefix`` of ``client``."""

    def __init__(
        self, client: TestClient[Any, Any], transport: str, prefix: str = "/sockjs"
    ) -> None:
        self.client = client
        self.transport = transport
        self.session_id = secrets.token_hex(4)
        self.base = f"{prefix}/000/{self.session_id}"
        self.prefix = prefix
        self._frames: asyncio.Queue[str] = asyncio.Queue()
        self._ws: ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stream: ClientResponse | None = None

    @property
    def websocket(self) -> bool:
        return "websocket" in self.transport

    async def open(self) -> None:
        """Connect and wait for the open frame."""
        if self.transport == "raw-websocket":
            self._ws = await self.client.ws_connect(f"{self.prefix}/websocket")
            self._reader = asyncio.create_task(self._read_ws(raw=True))
            return  # a raw WebSocket has no open frame
        if self.websocket:
            compress = 15 if self.transport == "websocket-deflate" else 0
            self._ws = await self.client.ws_connect(f"{self.base}/websocket", compress=compress)
            self._reader = asyncio.create_task(self._read_ws(raw=False))
        elif self.transport in ("xhr-polling", "jsonp-polling"):
            self._reader = asyncio.create_task(self._poll())
        else:
            self._reader = asyncio.create_task(self._read_stream())
        assert await self.next_frame() == "o"

    async def send(self, *messages: str) -> int:
        """Send ``messages`` in one write; returns the HTTP status (101 on WebSocket)."""
        if self._ws is not None:
            if self.transport == "raw-websocket":
                for message in messages:
                    await self._ws.send_str(message)
            else:
                await self._ws.send_str(json.dumps(list(messages)))
            return 101
        payload = json.dumps(list(messages))
        if self.transport == "jsonp-polling":
            response = await self.client.post(
                f"{self.base}/jsonp_send", data={"d": payload}, headers=_FORM
            )
        else:
            response = await self.client.post(f"{self.base}/xhr_send", data=payload)
        await response.read()
        return response.status

    async def next_frame(self, timeout: float = 5.0) -> str:
        """The next open, message or close frame."""
        return await asyncio.wait_for(self._frames.get(), timeout)

    async def messages_until_close(self, timeout: float = 5.0) -> tuple[list[str], list[Any]]:
        """Every message up to the close frame, and the close frame's ``[code, reason]``."""
        messages: list[str] = []
        while True:
            frame = await self.next_frame(timeout)
            if frame.startswith("c"):
                return messages, json.loads(frame[1:])
            assert frame.startswith("a"), frame
            messages += json.loads(frame[1:])

    async def disconnect(self) -> None:
        """Go away as a client does: close the WebSocket, or drop the open request."""
        if self._ws is not None:
            await self._ws.close()
        if self._stream is not None:
            self._stream.close()
        await self.stop()

    async def stop(self) -> None:
        """Stop reading (the test is done with this client)."""
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._stream is not None:  # a poll or stream cut short: give its connection back
            self._stream.close()
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()

    # -- readers, one per framing ----------------------------------------------------------

    async def _read_ws(self, *, raw: bool) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is WSMsgType.TEXT:
                self._put(json.dumps([msg.data]) if raw else msg.data, raw=raw)
        if raw:  # the close code and reason a raw client sees
            self._frames.put_nowait("c" + json.dumps([self._ws.close_code, ""]))

    def _put(self, frame: str, *, raw: bool = False) -> None:
        if raw:
            self._frames.put_nowait("a" + frame)
        elif frame != "h":
            self._frames.put_nowait(frame)

    async def _read_stream(self) -> None:
        if self.transport == "xhr-streaming":
            response = await self.client.post(f"{self.base}/xhr_streaming")
            await response.content.readuntil(b"\n")  # the 2 KiB prelude
            separator = b"\n"
        elif self.transport == "eventsource":
            response = await self.client.get(f"{self.base}/eventsource")
            await response.content.readuntil(b"\r\n")  # the prelude
            separator = b"\r\n\r\n"
        else:  # htmlfile
            response = await self.client.get(f"{self.base}/htmlfile?c=p")
            await response.content.readuntil(b"\r\n\r\n")  # the page prelude
            separator = b"</script>\r\n"
        self._stream = response
        while chunk := await response.content.readuntil(separator):
            self._put(_unwrap(self.transport, chunk))

    async def _poll(self) -> None:
        while True:
            if self.transport == "xhr-polling":
                response = await self.client.post(f"{self.base}/xhr")
            else:
                response = await self.client.get(f"{self.base}/jsonp?c=p")
            self._stream = response
            body = await response.read()
            if not body:
                return
            frame = _unwrap(self.transport, body)
            self._put(frame)
            if frame.startswith("c"):
                return


def _unwrap(transport: str, chunk: bytes) -> str:
    """The SockJS frame inside one transport chunk, as sockjs-client decodes it."""
    if transport in ("xhr-streaming", "xhr-polling"):
        return chunk.decode().rstrip("\n")
    if transport == "eventsource":
        return unquote(chunk.decode()[len("data: ") :].rstrip("\r\n"))
    if transport == "htmlfile":
        literal = chunk.decode()[len("<script>\np(") : -len(");\n</script>\r\n")]
    else:  # jsonp-polling
        literal = chunk.decode()[len("/**/p(") : -len(");\r\n")]
    frame = json.loads(literal)
    assert isinstance(frame, str)
    return frame
