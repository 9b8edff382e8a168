"""The seam between replay and live delivery when reading the history takes a round trip
(a hub whose reads are held): messages published meanwhile arrive once, after the replay,
in order; and a subscriber that gathers more of them than its bound is a slow consumer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sockjs_gateway.stomp import Broker
from tests.history.slow_hub import HeldReads
from tests.server.test_channels import make_app, texts
from tests.server.test_eventstream import make_app as make_stream_app
from tests.server.test_eventstream import next_event
from tests.sockjs_clients import SockJSClient
from tests.stomp.helpers import BrokerPeer, wire

TIMEOUT = 5.0


async def test_plain_api_messages_published_during_the_read_come_once_after_the_replay(
    aiohttp_client: Any,
) -> None:
    hub = HeldReads()
    app, endpoint = make_app(hub)
    client = await aiohttp_client(app)
    for text in ("1", "2"):
        endpoint.publish("c", text)
    reader = SockJSClient(client, "websocket")
    await reader.open()
    await reader.send(json.dumps({"subscribe": "c", "since": "first"}))
    await asyncio.wait_for(hub.reading.wait(), TIMEOUT)
    for text in ("3", "4"):
        endpoint.publish("c", text)
    hub.release.set()
    got: list[dict[str, Any]] = []
    while not got or got[-1].get("data") != "4":
        got += texts([await reader.next_frame(TIMEOUT)])
    assert got[0]["recovered"] is True
    assert [(m["data"], m["offset"]) for m in got[1:]] == [("1", 1), ("2", 2), ("3", 3), ("4", 4)]
    await reader.stop()


async def test_plain_api_too_many_messages_during_the_read_close_the_session(
    aiohttp_client: Any,
) -> None:
    hub = HeldReads()
    app, endpoint = make_app(hub)
    endpoint.channels.max_pending = 2
    client = await aiohttp_client(app)
    reader = SockJSClient(client, "websocket")
    await reader.open()
    await reader.send(json.dumps({"subscribe": "c", "since": "first"}))
    await asyncio.wait_for(hub.reading.wait(), TIMEOUT)
    for text in ("1", "2", "3"):
        endpoint.publish("c", text)
    hub.release.set()
    _, close = await reader.messages_until_close(TIMEOUT)
    assert close == [4500, "Slow consumer"]
    await reader.stop()


async def test_event_stream_seam_and_its_bound(aiohttp_client: Any) -> None:
    hub = HeldReads()
    app, _, stream = make_stream_app(hub, max_queued_messages=3)
    client = await aiohttp_client(app)
    hub.publish("c", "1")
    request = asyncio.ensure_future(client.get("/events/c?since=first"))
    await asyncio.wait_for(hub.reading.wait(), TIMEOUT)
    for text in ("2", "3"):
        hub.publish("c", text)
    hub.release.set()
    response = await request
    assert (await next_event(response))["event"] == "recovery"
    assert [(await next_event(response))["data"] for _ in range(3)] == ["1", "2", "3"]
    response.close()
    hub.reading.clear()
    hub.release.clear()
    request = asyncio.ensure_future(client.get("/events/c?since=first"))
    await asyncio.wait_for(hub.reading.wait(), TIMEOUT)
    for text in ("4", "5", "6", "7"):
        hub.publish("c", text)
    hub.release.set()
    response = await request
    assert (await next_event(response))["event"] == "recovery"
    assert stream.stats.slow_consumer_closes == 1
    response.close()


async def test_stomp_seam_and_its_bound() -> None:
    hub = HeldReads()
    broker = Broker(history=hub)
    reader = BrokerPeer(broker)
    await reader.connect()
    broker.publish("/topic/t", "1")
    subscribing = asyncio.ensure_future(
        reader.do(
            wire("SUBSCRIBE", {"destination": "/topic/t", "id": "s", "x-stream-offset": "first"})
        )
    )
    await asyncio.wait_for(hub.reading.wait(), TIMEOUT)
    broker.publish("/topic/t", "2")
    hub.release.set()
    await subscribing
    assert [(f.text, f.get("x-stream-offset")) for f in reader.take("MESSAGE")] == [
        ("1", "1"),
        ("2", "2"),
    ]
    slow = BrokerPeer(Broker(history=hub, options=broker.options.__class__(max_unacked=1)))
    await slow.connect()
    hub.reading.clear()
    hub.release.clear()
    subscribing = asyncio.ensure_future(
        slow.do(
            wire("SUBSCRIBE", {"destination": "/topic/u", "id": "s", "x-stream-offset": "first"})
        )
    )
    await asyncio.wait_for(hub.reading.wait(), TIMEOUT)
    slow.broker.publish("/topic/u", "a")
    slow.broker.publish("/topic/u", "b")
    hub.release.set()
    await subscribing
    assert "while the history of subscription 's' was read" in (slow.error() or "")
