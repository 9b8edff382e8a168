"""Channel history in Redis Streams on two nodes (two servers, each with its own
``RedisChannels`` on one real redis-server): a client cut mid-stream on one node resumes
on the other with no gap and no duplicate (STOMP with @stomp/stompjs, the plain SockJS
API, EventSource), and a Redis restart that loses the streams changes the epoch, which
live and resuming clients are told."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient

from sockjs_gateway import Endpoint, SockJSOptions, add_endpoint, add_event_stream
from sockjs_gateway.backplane.history import RedisChannels
from sockjs_gateway.history import HistoryLimits, Mode, Start
from sockjs_gateway.stomp import Broker, StompHandler
from tests.backplane.servers import RedisServer
from tests.clients.conftest import start
from tests.helpers import Publisher
from tests.server.test_channels import Subscriber, texts
from tests.server.test_eventstream import next_event
from tests.sockjs_clients import SockJSClient
from tests.stomp.drivers import NodeStomp, require_clients
from tests.stomp.test_e2e import connect

TOTAL = 40
INTERVAL = 0.005
TIMEOUT = 15.0


class ServerNode:
    """One server: a hub on the shared Redis, a plain SockJS endpoint, a STOMP endpoint
    and an event stream, all on that hub."""

    def __init__(self, redis_url: str) -> None:
        self.hub = RedisChannels(redis_url, HistoryLimits(), timeout=2.0, retry_delay=0.05)
        self.app = web.Application()
        options = SockJSOptions(allowed_origins=("*",), disconnect_delay=0.5)
        self.endpoint: Endpoint = add_endpoint(
            self.app, Subscriber(), prefix="/sockjs", options=options, channels=self.hub
        )
        self.broker = Broker(history=self.hub)
        add_endpoint(self.app, StompHandler(self.broker), prefix="/stomp", options=options)
        add_event_stream(self.app, channels=self.hub, prefix="/events", options=options)
        self.hub.run_with_app(self.app)
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.runner, self.url = await start(self.app)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest_asyncio.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[list[ServerNode]]:
    made = [ServerNode(redis_server.url), ServerNode(redis_server.url)]
    for node in made:
        await node.start()
    try:
        yield made
    finally:
        for node in made:
            await node.stop()


async def read_until(client: SockJSClient, data: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while not got or got[-1].get("data") != data:
        got += texts([await client.next_frame(TIMEOUT)])
    return got


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
async def test_plain_sockjs_client_resumes_on_the_other_node(
    nodes: list[ServerNode], transport: str
) -> None:
    a, b = nodes
    async with ClientSession(a.url) as to_a, ClientSession(b.url) as to_b:
        first = sockjs(to_a, transport)
        await first.open()
        await first.send(json.dumps({"subscribe": "news"}))
        [status] = texts([await first.next_frame(TIMEOUT)])
        assert status["recovered"] is True
        publisher = Publisher(
            [a.endpoint.publish, b.endpoint.publish], "news", total=TOTAL, interval=INTERVAL
        )
        try:
            seen = await read_until(first, "8")
            await first.disconnect()
            await publisher.reached(int(seen[-1]["data"]) + 5)
            last = seen[-1]
            second = sockjs(to_b, transport)
            await second.open()
            resume = {"subscribe": "news", "epoch": last["epoch"], "offset": last["offset"]}
            await second.send(json.dumps(resume))
            status, *rest = await read_until(second, str(TOTAL))
            await asyncio.wait_for(publisher.task, TIMEOUT)
        finally:
            publisher.task.cancel()
        await second.stop()
    assert status["recovered"] is True
    # Two nodes publish at once: Redis decides the order, and the offsets follow it.
    assert [m["offset"] for m in seen + rest] == list(range(1, TOTAL + 1))
    assert sorted(int(m["data"]) for m in seen + rest) == list(range(1, TOTAL + 1))


async def test_stomp_client_resubscribes_on_the_other_node(nodes: list[ServerNode]) -> None:
    require_clients()
    a, b = nodes
    destination = "/topic/across"
    node = await NodeStomp.start()
    try:
        await connect(node, a.url + "/stomp", "websocket", "a")
        await node.run(cmd="subscribe", id="a", sub="s", destination=destination, receipt="r")
        await node.wait("a", "receipt")
        publisher = Publisher(
            [a.broker.publish, b.broker.publish], destination, total=TOTAL, interval=INTERVAL
        )
        try:
            await node.wait("a", "message", 8, TIMEOUT)
            await node.run(cmd="cut", id="a")
            await node.wait("a", "close", 1, TIMEOUT)
            first = await node.seen("a", "message")
            await publisher.reached(len(first) + 5)
            last = first[-1]["headers"]
            await connect(node, b.url + "/stomp", "xhr-streaming", "b")
            resume = {
                "x-stream-offset": f"offset={int(last['x-stream-offset']) + 1}",
                "x-stream-epoch": last["x-stream-epoch"],
            }
            await node.run(
                cmd="subscribe", id="b", sub="s", destination=destination, headers=resume
            )
            await asyncio.wait_for(publisher.task, TIMEOUT)
            second = await node.wait("b", "message", TOTAL - len(first), TIMEOUT)
        finally:
            publisher.task.cancel()
        await node.run(cmd="disconnect", id="b")
    finally:
        await node.stop()
    offsets = [int(e["headers"]["x-stream-offset"]) for e in first + second]
    assert offsets == list(range(1, TOTAL + 1))
    assert sorted(int(e["body"]) for e in first + second) == list(range(1, TOTAL + 1))
    assert second[0]["headers"]["x-stream-recovered"] == "true"


async def test_event_stream_resumes_on_the_other_node(nodes: list[ServerNode]) -> None:
    a, b = nodes
    async with ClientSession() as http:
        response = await http.get(a.url + "/events/feed")
        assert (await next_event(response))["event"] == "recovery"
        for number in (1, 2, 3):
            a.hub.publish("feed", str(number))
        got = [await next_event(response) for _ in range(3)]
        response.close()
        for number in (4, 5):
            b.hub.publish("feed", str(number))
        await _published(b.hub, "feed", 5)
        again = await http.get(b.url + "/events/feed", headers={"Last-Event-ID": got[-1]["id"]})
        recovery = await next_event(again)
        assert json.loads(recovery["data"])["recovered"] is True
        got += [await next_event(again) for _ in range(2)]
        again.close()
    assert [e["data"] for e in got] == ["1", "2", "3", "4", "5"]
    epoch = got[0]["id"].split("-")[0]
    assert [e["id"] for e in got] == [f"{epoch}-{n}" for n in range(1, 6)]


async def test_a_redis_restart_changes_the_epoch_and_clients_are_told(
    nodes: list[ServerNode], redis_server: RedisServer
) -> None:
    a, b = nodes
    async with ClientSession(a.url) as to_a, ClientSession(b.url) as to_b:
        live = await subscribed(to_a, "news")
        b.endpoint.publish("news", "before")
        [before] = await read_until(live, "before")
        redis_server.kill()  # no persistence: the streams and epochs are gone
        redis_server.start()
        b.endpoint.publish("news", "after")  # retried until Redis answers again
        after = await in_a_new_epoch(live, "news", "after", before)
        late = sockjs(to_b, "xhr-streaming")
        await late.open()
        resume = {"subscribe": "news", "epoch": before["epoch"], "offset": before["offset"]}
        await late.send(json.dumps(resume))
        status, replayed = await read_until(late, "after")
        assert status["recovered"] is False
        assert (replayed["data"], replayed["epoch"]) == ("after", after["epoch"])
        await live.stop()
        await late.stop()
        redis_server.kill()
        async with ClientSession() as http:
            down = await http.get(a.url + "/events/news?since=first")
            assert (down.status, await down.text()) == (503, "History unavailable.")


async def _published(hub: RedisChannels, channel: str, count: int) -> None:
    """Until ``count`` messages of ``channel`` are in Redis (publish does not wait)."""
    async with asyncio.timeout(TIMEOUT):
        while len((await hub.read(channel, Start(Mode.FIRST))).entries) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def sockjs(session: ClientSession, transport: str) -> SockJSClient:
    """A wire-level SockJS client of the node ``session`` is bound to."""
    return SockJSClient(cast("TestClient[Any, Any]", _Client(session)), transport)


async def in_a_new_epoch(
    live: SockJSClient, channel: str, data: str, before: dict[str, Any]
) -> dict[str, Any]:
    """Reads ``live`` up to the message ``data``: its subscriber was first told that
    ``channel`` starts again in a new epoch (nothing recovered), and ``data`` is the first
    message of that epoch (returned)."""
    told, after = await read_until(live, data)
    assert told == {
        "channel": channel,
        "subscribed": True,
        "epoch": after["epoch"],
        "recovered": False,
    }
    assert after["epoch"] != before["epoch"]
    assert after["offset"] == 1
    return after


async def subscribed(session: ClientSession, channel: str) -> SockJSClient:
    """A websocket client of the node ``session`` is bound to, subscribed to ``channel``
    (its subscription answer read)."""
    live = sockjs(session, "websocket")
    await live.open()
    await live.send(json.dumps({"subscribe": channel}))
    await live.next_frame(TIMEOUT)
    return live


class _Client:
    """Enough of aiohttp's TestClient for :class:`SockJSClient`, over a ClientSession
    whose base URL is one node."""

    def __init__(self, session: ClientSession) -> None:
        self._session = session

    def ws_connect(self, path: str, **kwargs: Any) -> Any:
        return self._session.ws_connect(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self._session.post(path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._session.get(path, **kwargs)
