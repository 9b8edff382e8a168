"""Relaying: every request of one SockJS session goes to a different node, round-robin,
as behind a plain balancer, and the session behaves as on one node.

Each test runs on two clusters of three nodes: in-process nodes sharing one MemoryHub,
each on a real aiohttp server on loopback (the unit-level seam), and three ``python -m
sockjs_gateway serve --redis`` processes sharing a real redis-server. Sessions of one
cluster are independent (fresh ids), so the cluster lives for the module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from sockjs_gateway.backplane import MemoryBackplane, MemoryHub
from tests.backplane.relaying import (
    LocalNodes,
    closes,
    new_id,
    poll,
    send,
    start_node,
    stream,
    wait_for,
)
from tests.backplane.servers import Node, RedisServer

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Cluster:
    def __init__(self, urls: list[str]) -> None:
        self.urls = urls


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["memory", "redis"])
async def nodes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    if request.param == "memory":
        hub = MemoryHub()
        local = LocalNodes()
        try:
            for _ in range(3):
                await local.add(MemoryBackplane(hub))
            yield Cluster(local.urls)
        finally:
            await local.close()
        return
    workdir: Path = tmp_path_factory.mktemp("relay")
    redis = RedisServer(workdir)
    redis.start()
    started: list[Node] = []
    try:
        for index in range(3):
            started.append(await start_node(redis.url, workdir / f"node{index}.log"))
        yield Cluster([node.url for node in started])
    finally:
        for node in started:
            await node.kill()
        redis.kill()


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_open_send_poll_each_on_another_node(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    assert await send(http, b, sid, ["hello"]) == (204, "")
    assert await poll(http, c, sid) == 'a["hello"]\n'


async def test_ordered_messages_through_alternating_nodes(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    urls = nodes.urls
    sid = new_id()
    assert await poll(http, urls[0], sid) == "o\n"
    received: list[str] = []

    async def receive() -> None:
        # Polls go on while the sends do, as a browser's would: a session left without a
        # receiver for disconnect_delay (1 s here) would expire on a slow machine.
        for turn in range(400):
            if len(received) >= 200:
                return
            body = await poll(http, urls[(turn + 1) % 3], sid)
            if body != "h\n":
                assert body.startswith("a"), body
                received.extend(json.loads(body[1:]))

    receiving = asyncio.ensure_future(receive())
    for index in range(200):
        assert (await send(http, urls[index % 3], sid, [str(index)]))[0] == 204
    await asyncio.wait_for(receiving, 60)
    assert received == [str(i) for i in range(200)]


async def test_404_for_a_send_to_an_unknown_session(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, _ = nodes.urls
    assert (await send(http, b, new_id(), ["x"]))[0] == 404
    closed = new_id()  # owned by a, closed there: the owner's verdict is 404
    assert await poll(http, a, closed, prefix="/close") == "o\n"
    assert (await send(http, b, closed, ["x"], prefix="/close"))[0] == 404


async def test_another_connection_still_open_across_nodes(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    first = asyncio.ensure_future(poll(http, b, sid))
    await asyncio.sleep(0.1)
    assert await poll(http, c, sid) == 'c[2010,"Another connection still open"]\n'
    assert (await send(http, a, sid, ["x"]))[0] == 204
    assert await first == 'a["x"]\n'


async def test_close_frame_replayed_on_another_node(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = new_id()
    assert await poll(http, a, sid, prefix="/close") == "o\n"
    assert await poll(http, b, sid, prefix="/close") == 'c[3000,"Go away!"]\n'
    assert await poll(http, c, sid, prefix="/close") == 'c[3000,"Go away!"]\n'


async def test_relayed_client_leaving_interrupts_the_session(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    waiting = asyncio.ensure_future(poll(http, b, sid))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    async def recorded() -> bool:
        return sid in await closes(http, a)

    await wait_for(recorded)  # the 1002 arrives through the relay
    assert (await closes(http, a))[sid] == [1002, "Connection interrupted"]
    assert await poll(http, c, sid) == 'c[1002,"Connection interrupted"]\n'


async def test_streaming_recycles_after_response_limit_through_a_relay(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"
    big = "x" * 5000
    streaming = asyncio.ensure_future(stream(http, b, sid))
    await asyncio.sleep(0.1)
    assert (await send(http, c, sid, [big]))[0] == 204
    body = await streaming  # ends by itself: past response_limit (4096 bytes)
    assert body == "h" * 2048 + "\n" + f'a["{big}"]\n'
    assert (await send(http, a, sid, ["after"]))[0] == 204
    assert await poll(http, c, sid) == 'a["after"]\n'


async def test_framing_of_every_receiving_transport_through_a_relay(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = new_id()
    assert await poll(http, a, sid, prefix="/close") == "o\n"
    assert await poll(http, b, sid, prefix="/close", transport="jsonp") == (
        '/**/cb("c[3000,\\"Go away!\\"]");\r\n'
    )
    events = await stream(http, c, sid, prefix="/close", transport="eventsource")
    assert events == '\r\ndata: c[3000,"Go away!"]\r\n\r\n'
    page = await stream(http, b, sid, prefix="/close", transport="htmlfile")
    assert page.endswith('<script>\np("c[3000,\\"Go away!\\"]");\n</script>\r\n')


async def test_heartbeats_arrive_through_a_relay(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, _ = nodes.urls
    sid = new_id()
    assert await poll(http, a, sid, prefix="/hb") == "o\n"
    assert await poll(http, b, sid, prefix="/hb") == "h\n"


async def test_session_expires_after_disconnect_delay(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, _ = nodes.urls
    sid = new_id()
    assert await poll(http, a, sid) == "o\n"

    async def expired() -> bool:
        return sid in await closes(http, a)

    await wait_for(expired)  # disconnect_delay is 1 s
    assert (await closes(http, a))[sid] == [1000, "Session timed out"]
    assert (await send(http, b, sid, ["x"]))[0] == 404
    assert await poll(http, b, sid) == "o\n"  # a fresh session, now owned by b
