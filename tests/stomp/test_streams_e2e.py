"""@stomp/stompjs over sockjs-client (Node) resumes a /topic/ after its connection is cut
mid-stream, with x-stream-offset: every message exactly once, on every transport.

The server publishes on its own all along (a task, every few milliseconds), so messages
arrive while the client is away and while it resubscribes: the seam between replay and
live delivery is crossed under traffic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sockjs_gateway import SockJSOptions, add_endpoint
from sockjs_gateway.history import HistoryLimits
from sockjs_gateway.stomp import Broker, StompHandler
from tests.clients import conftest as clients
from tests.helpers import Publisher
from tests.stomp.drivers import NodeStomp, require_clients
from tests.stomp.test_e2e import connect

pytestmark = pytest.mark.asyncio(loop_scope="module")

TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling"]
TOTAL = 60
INTERVAL = 0.01
TIMEOUT = 20.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served() -> AsyncIterator[tuple[str, Broker]]:
    require_clients()
    from aiohttp import web

    app = web.Application()
    broker = Broker(history=HistoryLimits(max_messages=TOTAL))
    options = SockJSOptions(allowed_origins=("*",), disconnect_delay=1.0)
    add_endpoint(app, StompHandler(broker), prefix="/stomp", options=options)
    async with clients.served(app) as url:
        yield url + "/stomp", broker


@pytest_asyncio.fixture(loop_scope="module")
async def node() -> AsyncIterator[NodeStomp]:
    async with NodeStomp.running() as driver:
        yield driver


def bodies(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["body"]) for e in events]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("how", ["cut", "disconnect"])
async def test_resubscribe_with_the_last_offset_gets_every_message_once(
    served: tuple[str, Broker], node: NodeStomp, transport: str, how: str
) -> None:
    url, broker = served
    destination = f"/topic/resume-{transport}-{how}"
    await connect(node, url, transport, "a")
    await node.run(cmd="subscribe", id="a", sub="s", destination=destination, receipt="ra")
    await node.wait("a", "receipt")
    publisher = Publisher([broker.publish], destination, total=TOTAL, interval=INTERVAL)
    try:
        await node.wait("a", "message", 10, TIMEOUT)
        await node.run(cmd=how, id="a")
        await node.wait("a", "close", 1, TIMEOUT)
        first = await node.seen("a", "message")
        await publisher.reached(len(first) + 10)  # messages the client misses while away
        last = first[-1]["headers"]
        await connect(node, url, transport, "b")
        resume = {
            "x-stream-offset": f"offset={int(last['x-stream-offset']) + 1}",
            "x-stream-epoch": last["x-stream-epoch"],
        }
        await node.run(cmd="subscribe", id="b", sub="s", destination=destination, headers=resume)
        await asyncio.wait_for(publisher.task, TIMEOUT)
        second = await node.wait("b", "message", TOTAL - len(first), TIMEOUT)
    finally:
        publisher.task.cancel()
    assert bodies(first) + bodies(second) == list(range(1, TOTAL + 1))
    offsets = [int(e["headers"]["x-stream-offset"]) for e in first + second]
    assert offsets == list(range(1, TOTAL + 1))
    assert second[0]["headers"]["x-stream-recovered"] == "true"
    assert "x-stream-recovered" not in second[1]["headers"]
    await node.run(cmd="disconnect", id="b")


async def test_resuming_from_a_lost_epoch_is_reported(
    served: tuple[str, Broker], node: NodeStomp
) -> None:
    url, broker = served
    destination = "/topic/lost-epoch"
    for number in (1, 2):
        broker.publish(destination, str(number))
    await connect(node, url, "websocket", "a")
    lost = {"x-stream-offset": "offset=7", "x-stream-epoch": "00000000"}
    await node.run(cmd="subscribe", id="a", sub="s", destination=destination, headers=lost)
    frames = await node.wait("a", "message", 2, TIMEOUT)
    assert bodies(frames) == [1, 2]
    assert frames[0]["headers"]["x-stream-recovered"] == "false"
    await node.run(cmd="disconnect", id="a")
