"""Relaying when a node or Redis fails: every relayed request ends with a clear answer
within a few seconds (``relay_timeout`` is 1.5 s in the test app), nothing hangs and no
message is delivered twice. Real ``serve --redis`` processes and a real redis-server;
nodes are SIGKILLed (no goodbye), Redis is SIGKILLed and started again on its port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.backplane.relaying import (
    close_of,
    held,
    new_id,
    opened,
    poll,
    redis_nodes,
    send,
    wait_for,
)
from tests.backplane.servers import Node, RedisServer

OWNER_UNREACHABLE = 'c[1011,"Session owner unreachable"]'


class Pair:
    def __init__(self, redis: RedisServer, nodes: list[Node]) -> None:
        self.redis = redis
        self.nodes = nodes
        self.a, self.b = (node.url for node in nodes)


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with redis_nodes(tmp_path, 2) as (redis, nodes):
        yield Pair(redis, nodes)


async def test_owner_killed_ends_relayed_requests_with_a_close_frame(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    polled, streamed = await opened(http, pair.a), await opened(http, pair.a)
    waiting = asyncio.ensure_future(poll(http, pair.b, polled))
    streaming = asyncio.ensure_future(poll(http, pair.b, streamed, transport="xhr_streaming"))
    await asyncio.sleep(0.3)
    await pair.nodes[0].kill()
    assert await asyncio.wait_for(waiting, 15) == OWNER_UNREACHABLE + "\n"
    assert await asyncio.wait_for(streaming, 15) == "h" * 2048 + "\n" + OWNER_UNREACHABLE + "\n"
    assert "Session owner unreachable" not in pair.nodes[1].logged()  # logged as a failure:
    assert "no word from the owner node" in pair.nodes[1].logged()


async def test_relaying_node_killed_interrupts_the_session_on_its_owner(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    sid = await opened(http, pair.a)
    waiting = await held(http, pair.b, sid, settle=0.3)
    await pair.nodes[1].kill()
    with pytest.raises(aiohttp.ClientError):
        await waiting
    assert await close_of(http, pair.a, sid) == [1002, "Connection interrupted"]
    assert await poll(http, pair.a, sid) == 'c[1002,"Connection interrupted"]\n'


class Poller:
    """A polling client of one session on one node, as sockjs-client polls: the next
    poll as soon as one ends, so the session never expires; collects every message."""

    def __init__(self, http: aiohttp.ClientSession, base: str, sid: str) -> None:
        self.messages: list[str] = []
        self.frames: list[str] = []
        self._task = asyncio.ensure_future(self._run(http, base, sid))

    async def _run(self, http: aiohttp.ClientSession, base: str, sid: str) -> None:
        while True:
            body = await poll(http, base, sid)
            self.frames.append(body)
            if body.startswith("a"):
                self.messages += json.loads(body[1:])
            elif body.startswith("c"):
                return

    async def until(self, count: int) -> list[str]:
        async def enough() -> bool:
            return len(self.messages) >= count or self._task.done()

        await wait_for(enough)
        return self.messages

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_redis_outage_keeps_local_sessions_and_fails_relays_fast(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    local, relayed = await opened(http, pair.a), await opened(http, pair.a)
    client = Poller(http, pair.a, local)
    try:
        assert (await send(http, pair.a, local, ["0", "1"]))[0] == 204
        assert await client.until(2) == ["0", "1"]
        waiting = await held(http, pair.b, relayed, settle=0.3)
        pair.redis.kill()
        # The relayed poll ends with the close frame; the owner interrupts its session.
        assert await asyncio.wait_for(waiting, 15) == OWNER_UNREACHABLE + "\n"
        assert await close_of(http, pair.a, relayed) == [1002, "Connection interrupted"]
        # A send that would need the directory gets 503 at once.
        assert await send(http, pair.b, local, ["lost"]) == (503, "Session relay unavailable.")
        # The local session goes on.
        assert (await send(http, pair.a, local, ["2"]))[0] == 204
        assert await client.until(3) == ["0", "1", "2"]
        # A new session opens on the node it reached, without a claim.
        assert await poll(http, pair.b, new_id()) == "o\n"
        pair.redis.start()
        fresh = await opened(http, pair.a)
        fresh_client = Poller(http, pair.a, fresh)
        try:

            async def relays_again() -> bool:
                status, _ = await send(http, pair.b, fresh, ["back"])
                return status == 204  # 503 until the nodes are back on Redis

            await wait_for(relays_again, 30)
            assert await fresh_client.until(1) == ["back"]
        finally:
            await fresh_client.stop()
        assert (await send(http, pair.b, local, ["3"]))[0] == 204  # relayed to a again
        assert (await send(http, pair.a, local, ["4"]))[0] == 204
        assert await client.until(5) == ["0", "1", "2", "3", "4"]  # once each, in order
    finally:
        await client.stop()
