"""The plain SockJS channel API (``endpoint.publish``, ``session.subscribe``) over every
transport, with a client on the wire that is cut mid-stream and resumes in a new session
from the last message it saw: every message once, in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from sockjs_gateway import Endpoint, Session, SockJSOptions, add_endpoint
from sockjs_gateway.history import Channels, HistoryLimits, Position
from tests.sockjs_clients import TRANSPORTS, SockJSClient

TOTAL = 40
INTERVAL = 0.005
TIMEOUT = 10.0


class Subscriber:
    """Subscribes when the client asks: ``{"subscribe": name, "epoch": e, "offset": n}``
    (epoch and offset of the last message seen, when resuming); ``{"unsubscribe": name}``."""

    async def on_open(self, session: Session) -> None:
        pass

    async def on_message(self, session: Session, message: str) -> None:
        request = json.loads(message)
        if "unsubscribe" in request:
            session.unsubscribe(request["unsubscribe"])
            return
        since = request.get("since")
        if "offset" in request:
            since = Position(request["epoch"], request["offset"])
        await session.subscribe(request["subscribe"], since)

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        pass


def make_app(hub: Channels | None = None) -> tuple[web.Application, Endpoint]:
    app = web.Application()
    options = SockJSOptions(disconnect_delay=0.5, heartbeat_delay=5.0, allowed_origins=("*",))
    endpoint = add_endpoint(app, Subscriber(), prefix="/sockjs", options=options, channels=hub)
    return app, endpoint


def texts(frames: list[str]) -> Iterator[dict[str, Any]]:
    for frame in frames:
        if frame.startswith("a"):
            for message in json.loads(frame[1:]):
                yield json.loads(message)


async def read(client: SockJSClient, until: int) -> list[dict[str, Any]]:
    """Messages until the one whose data is ``until``."""
    got: list[dict[str, Any]] = []
    while not got or got[-1].get("data") != str(until):
        got += texts([await client.next_frame(TIMEOUT)])
    return got


def drained(client: SockJSClient) -> list[dict[str, Any]]:
    frames = []
    while not client._frames.empty():
        frames.append(client._frames.get_nowait())
    return list(texts(frames))


async def publish_all(endpoint: Endpoint, channel: str, done: list[int]) -> None:
    for number in range(1, TOTAL + 1):
        endpoint.publish(channel, str(number))
        done.append(number)
        await asyncio.sleep(INTERVAL)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_cut_mid_stream_resumes_without_gap_or_duplicate(
    aiohttp_client: Any, transport: str
) -> None:
    app, endpoint = make_app()
    client = await aiohttp_client(app)
    first = SockJSClient(client, transport)
    await first.open()
    await first.send(json.dumps({"subscribe": "news"}))
    [status] = texts([await first.next_frame(TIMEOUT)])  # nothing else is published yet
    assert status == {"channel": "news", "subscribed": True, "epoch": None, "recovered": True}
    done: list[int] = []
    publisher = asyncio.create_task(publish_all(endpoint, "news", done))
    try:
        seen = await read(first, 8)
        await first.disconnect()
        seen += drained(first)
        async with asyncio.timeout(TIMEOUT):  # messages published while it is away
            while len(done) < len(seen) + 5:  # noqa: ASYNC110
                await asyncio.sleep(INTERVAL)
        last = seen[-1]
        second = SockJSClient(client, transport)
        await second.open()
        resume = {"subscribe": "news", "epoch": last["epoch"], "offset": last["offset"]}
        await second.send(json.dumps(resume))
        status, *rest = await read(second, TOTAL)
        assert status == {
            "channel": "news",
            "subscribed": True,
            "epoch": last["epoch"],
            "recovered": True,
        }
        await asyncio.wait_for(publisher, TIMEOUT)
    finally:
        publisher.cancel()
    await second.stop()
    data = [int(m["data"]) for m in seen + rest]
    assert data == list(range(1, TOTAL + 1))
    assert [m["offset"] for m in seen + rest] == data
    assert {m["epoch"] for m in seen + rest} == {last["epoch"]}


async def test_a_resume_from_a_lost_epoch_says_so_and_replays_what_is_kept(
    aiohttp_client: Any,
) -> None:
    app, endpoint = make_app()
    client = await aiohttp_client(app)
    endpoint.publish("news", "kept")
    reader = SockJSClient(client, "websocket")
    await reader.open()
    await reader.send(json.dumps({"subscribe": "news", "epoch": "00000000", "offset": 9}))
    status, kept = texts([await reader.next_frame(TIMEOUT), await reader.next_frame(TIMEOUT)])
    assert status["recovered"] is False
    assert status["epoch"] == kept["epoch"] != "00000000"
    assert (kept["data"], kept["offset"]) == ("kept", 1)
    await reader.stop()


@pytest.mark.parametrize(("since", "expected"), [("first", ["1", "2", "3"]), ("last", ["3"])])
async def test_subscribe_from_a_named_point(
    aiohttp_client: Any, since: str, expected: list[str]
) -> None:
    app, endpoint = make_app()
    client = await aiohttp_client(app)
    for text in ("1", "2", "3"):
        endpoint.publish("news", text)
    reader = SockJSClient(client, "xhr-streaming")
    await reader.open()
    await reader.send(json.dumps({"subscribe": "news", "since": since}))
    got = await read(reader, 3)
    assert [m["data"] for m in got[1:]] == expected
    await reader.stop()


async def test_two_endpoints_share_a_hub_and_unsubscribe_stops_delivery(
    aiohttp_client: Any,
) -> None:
    hub = Channels(HistoryLimits(max_messages=10))
    app_a, a = make_app(hub)
    app_b, _ = make_app(hub)
    client_a, client_b = await aiohttp_client(app_a), await aiohttp_client(app_b)
    readers = [SockJSClient(client_a, "websocket"), SockJSClient(client_b, "websocket")]
    for reader in readers:
        await reader.open()
        await reader.send(json.dumps({"subscribe": "news"}))
        await reader.next_frame(TIMEOUT)
    a.publish("news", "both")
    for reader in readers:
        [message] = texts([await reader.next_frame(TIMEOUT)])
        assert message["data"] == "both"
    await readers[1].send(json.dumps({"unsubscribe": "news"}))
    await readers[1].send(json.dumps({"subscribe": "other"}))
    await readers[1].next_frame(TIMEOUT)  # subscribed to "other": the unsubscribe ran
    a.publish("news", "only a")
    a.publish("other", "b again")
    [message] = texts([await readers[0].next_frame(TIMEOUT)])
    assert message["data"] == "only a"
    [message] = texts([await readers[1].next_frame(TIMEOUT)])
    assert message["data"] == "b again"
    for reader in readers:
        await reader.stop()


async def test_subscriptions_are_bounded_and_end_with_the_session(aiohttp_client: Any) -> None:
    app, endpoint = make_app()
    endpoint.channels.max_subscriptions = 2
    client = await aiohttp_client(app)
    reader = SockJSClient(client, "websocket")
    await reader.open()
    for name in ("one", "two", "three"):
        await reader.send(json.dumps({"subscribe": name}))
    frames, close = await reader.messages_until_close(TIMEOUT)
    assert len(frames) == 2
    assert close == [1011, "Internal error"]  # the handler let the ValueError escape
    async with asyncio.timeout(TIMEOUT):
        while endpoint.channels._by_session:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert endpoint.channels._groups == {}
    await reader.stop()
