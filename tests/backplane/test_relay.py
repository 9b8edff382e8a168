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

import aiohttp
import pytest
import pytest_asyncio

from tests.backplane.relaying import (
    close_of,
    held,
    memory_nodes,
    new_id,
    opened,
    poll,
    redis_nodes,
    send,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Cluster:
    def __init__(self, urls: list[str]) -> None:
        self.urls = urls


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["memory", "redis"])
async def nodes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    if request.param == "memory":
        async with memory_nodes(count=3) as local:
            yield Cluster(local.urls)
        return
    async with redis_nodes(tmp_path_factory.mktemp("relay"), 3) as (_, started):
        yield Cluster([node.url for node in started])


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_open_send_poll_each_on_another_node(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = await opened(http, a)
    assert await send(http, b, sid, ["hello"]) == (204, "")
    assert await poll(http, c, sid) == 'a["hello"]\n'


async def test_ordered_messages_through_alternating_nodes(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    urls = nodes.urls
    sid = await opened(http, urls[0])
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
    closed = await opened(http, a, prefix="/close")  # closed by a: the owner says 404
    assert (await send(http, b, closed, ["x"], prefix="/close"))[0] == 404


async def test_another_connection_still_open_across_nodes(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = await opened(http, a)
    first = await held(http, b, sid)
    assert await poll(http, c, sid) == 'c[2010,"Another connection still open"]\n'
    assert (await send(http, a, sid, ["x"]))[0] == 204
    assert await first == 'a["x"]\n'


@pytest.mark.parametrize(
    ("prefix", "frame"),
    [
        pytest.param("/close", 'c[3000,"Go away!"]\n', id="close-frame-replayed"),
        pytest.param("/hb", "h\n", id="heartbeat"),  # every 0.3 s on /hb
    ],
)
async def test_what_the_owner_sends_reaches_polls_on_other_nodes(
    nodes: Cluster, http: aiohttp.ClientSession, prefix: str, frame: str
) -> None:
    a, b, c = nodes.urls
    sid = await opened(http, a, prefix=prefix)
    assert await poll(http, b, sid, prefix=prefix) == frame
    assert await poll(http, c, sid, prefix=prefix) == frame


async def test_relayed_client_leaving_interrupts_the_session(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = await opened(http, a)
    waiting = await held(http, b, sid)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # the 1002 arrives through the relay
    assert await close_of(http, a, sid) == [1002, "Connection interrupted"]
    assert await poll(http, c, sid) == 'c[1002,"Connection interrupted"]\n'


async def test_streaming_recycles_after_response_limit_through_a_relay(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = await opened(http, a)
    big = "x" * 5000
    streaming = await held(http, b, sid, transport="xhr_streaming")
    assert (await send(http, c, sid, [big]))[0] == 204
    body = await streaming  # ends by itself: past response_limit (4096 bytes)
    assert body == "h" * 2048 + "\n" + f'a["{big}"]\n'
    assert (await send(http, a, sid, ["after"]))[0] == 204
    assert await poll(http, c, sid) == 'a["after"]\n'


async def test_framing_of_every_receiving_transport_through_a_relay(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes.urls
    sid = await opened(http, a, prefix="/close")
    assert await poll(http, b, sid, prefix="/close", transport="jsonp") == (
        '/**/cb("c[3000,\\"Go away!\\"]");\r\n'
    )
    events = await poll(http, c, sid, prefix="/close", transport="eventsource")
    assert events == '\r\ndata: c[3000,"Go away!"]\r\n\r\n'
    page = await poll(http, b, sid, prefix="/close", transport="htmlfile")
    assert page.endswith('<script>\np("c[3000,\\"Go away!\\"]");\n</script>\r\n')


async def test_session_expires_after_disconnect_delay(
    nodes: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, _ = nodes.urls
    sid = await opened(http, a)
    # disconnect_delay is 1 s
    assert await close_of(http, a, sid) == [1000, "Session timed out"]
    assert (await send(http, b, sid, ["x"]))[0] == 404
    assert await poll(http, b, sid) == "o\n"  # a fresh session, now owned by b
