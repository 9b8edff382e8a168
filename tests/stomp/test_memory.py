"""Memory a hostile STOMP client can make the broker hold, measured in a server
subprocess (``serve --app tests.stomp.memory_app:make_app``) with tracemalloc.

Before the limits, 10k queues of one 60 KB message each added 653 MB that stayed after
the client left. Now the default ``max_queued_bytes`` (64 MiB) stops the sender, and
draining the queues gives every byte back; 10k empty queues are forgotten on disconnect,
and the default ``max_destinations`` (10k) refuses one more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from sockjs_gateway.stomp import Frame, FrameDecoder, StompOptions, encode_text
from tests.processes import started

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT = 60.0
BODY = "m" * (60 * 1000)
QUEUES = 10_000
DEFAULTS = StompOptions()
MIB = 1024 * 1024


def wire(command: str, headers: dict[str, str], body: str = "") -> str:
    return encode_text(Frame.build(command, headers, body))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[str]:
    async with started("serve", "--app", "tests.stomp.memory_app:make_app") as (_, url):
        yield url.rstrip("/")


class Client:
    """One STOMP connection over the endpoint's raw WebSocket route."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self.messages = 0
        self._decoder = FrameDecoder()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._changed = asyncio.Event()

    async def _read(self) -> None:
        async for message in self.ws:
            for frame in self._decoder.feed(message.data):
                if frame.command == "MESSAGE":
                    self.messages += 1  # bodies are not kept: the client holds nothing
                else:
                    self.frames.append(frame)
            self._changed.set()
        self._changed.set()

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def until(self, predicate: Any) -> None:
        async def wait() -> None:
            while not predicate():
                self._changed.clear()
                if self.closed:
                    raise AssertionError(("closed", self.frames))
                await self._changed.wait()

        await asyncio.wait_for(wait(), TIMEOUT)

    def commands(self, command: str) -> list[Frame]:
        return [f for f in self.frames if f.command == command]


async def connect(http: aiohttp.ClientSession, url: str) -> Client:
    ws = await http.ws_connect(url + "/stomp/websocket", max_msg_size=0)
    client = Client(ws)
    await ws.send_str(wire("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"}))
    await client.until(lambda: client.commands("CONNECTED"))
    return client


async def stats(http: aiohttp.ClientSession, url: str) -> dict[str, int]:
    async with http.get(url + "/stats") as response:
        found: dict[str, int] = await response.json()
        return found


async def settled(http: aiohttp.ClientSession, url: str) -> dict[str, int]:
    """Stats once every connection has been detached (bounded poll)."""
    for _ in range(200):
        now = await stats(http, url)
        if now["clients"] == 0:
            return now
        await asyncio.sleep(0.05)
    raise AssertionError(now)


async def test_filling_queues_stops_at_max_queued_bytes_and_draining_frees_it(
    server: str,
) -> None:
    async with aiohttp.ClientSession() as http:
        before = await settled(http, server)
        sender = await connect(http, server)
        sent = 0
        for i in range(QUEUES):  # one 60 KB message to each of 10k queues, unless stopped
            if sender.closed:
                break
            await sender.ws.send_str(wire("SEND", {"destination": f"/queue/q{i}"}, BODY))
            sent += 1
        await sender.until(lambda: sender.closed)
        [error] = sender.commands("ERROR")
        limit = DEFAULTS.max_queued_bytes
        assert error.get("message") == (
            f"the broker holds too many queued bytes (max_queued_bytes={limit})"
        )
        full = await settled(http, server)
        held = full["destinations"]
        assert held < sent <= QUEUES
        assert limit - len(BODY) < full["queued_bytes"] <= limit
        grown = full["traced"] - before["traced"]
        print(f"\n{held} queues x 60 KB held: +{grown / MIB:.1f} MiB traced")
        assert grown < limit * 1.2

        # A consumer takes every message (subscribe and unsubscribe, 50 queues a batch).
        # It waits for each batch before the next, as a reading client does: 3 MB in
        # flight stays under the session's max_queued_bytes (4 MiB) however slowly this
        # process reads, so the slow-consumer bound never cuts it off.
        consumer = await connect(http, server)
        for start in range(0, held, 50):
            end = min(start + 50, held)
            batch = "".join(
                wire("SUBSCRIBE", {"id": str(i), "destination": f"/queue/q{i}"})
                + wire("UNSUBSCRIBE", {"id": str(i)})
                for i in range(start, end)
            )
            await consumer.ws.send_str(batch)
            await consumer.until(lambda end=end: consumer.messages >= end)
        await consumer.ws.send_str(wire("DISCONNECT", {"receipt": "bye"}))
        await consumer.until(lambda: consumer.closed)
        assert consumer.messages == held
        after = await settled(http, server)
        assert (after["queued_bytes"], after["destinations"]) == (0, 0)
        left = after["traced"] - before["traced"]
        print(f"after draining: {left / MIB:+.2f} MiB traced")
        assert left < 2 * MIB


async def test_ten_thousand_empty_queues_are_forgotten_on_disconnect(server: str) -> None:
    async with aiohttp.ClientSession() as http:
        before = await settled(http, server)
        client = await connect(http, server)
        for start in range(0, QUEUES, 500):
            batch = "".join(
                wire("SUBSCRIBE", {"id": str(i), "destination": f"/queue/empty{i}"})
                for i in range(start, start + 500)
            )
            await client.ws.send_str(batch)
        await client.ws.send_str(wire("SEND", {"destination": "/topic/x", "receipt": "r"}))
        await client.until(lambda: client.commands("RECEIPT"))
        full = await stats(http, server)
        assert full["destinations"] == QUEUES
        each = (full["traced"] - before["traced"]) / QUEUES
        print(f"\n10k empty queues with a subscriber: {each:.0f} bytes each")
        await client.ws.send_str(wire("SUBSCRIBE", {"id": "last", "destination": "/topic/x"}))
        await client.until(lambda: client.closed)
        # The 10,001st destination is refused with the default max_destinations.
        [error] = client.commands("ERROR")
        limit = DEFAULTS.max_destinations
        assert limit == QUEUES
        assert error.get("message") == f"too many destinations (max_destinations={limit})"
        after = await settled(http, server)
        assert after["destinations"] == 0
        left = after["traced"] - before["traced"]
        print(f"10k empty queues after disconnect: {left / 1024:+.0f} KiB traced")
        assert left < 1 * MIB
