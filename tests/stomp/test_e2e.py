"""The real @stomp/stompjs 7.5.0 over sockjs-client 1.6.1, in Node and in headless Chromium,
on websocket, xhr-streaming and xhr-polling, against the testserver's ``/stomp``: what a
page written for Spring's SockJS + STOMP does, unchanged."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.clients.conftest import new_page, served
from tests.stomp.drivers import (
    BrowserStomp,
    NodeStomp,
    StompDriver,
    make_server_app,
    require_clients,
)

TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling"]

#: Every test runs on each transport, in Node and in Chromium (the ``driver`` fixture).
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.parametrize("transport", TRANSPORTS),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[str]:
    require_clients()
    async with served(make_server_app()) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module")
async def node_driver(server: str) -> AsyncIterator[StompDriver]:
    async with NodeStomp.running() as node:
        yield node


@pytest_asyncio.fixture(loop_scope="module")
async def chromium_driver(browser: Any, server: str) -> AsyncIterator[StompDriver]:
    async with new_page(browser) as page:
        await page.goto(server + "/stomp_probe.html")
        yield BrowserStomp(page)


@pytest.fixture(params=["node", "chromium"])
def driver(request: pytest.FixtureRequest) -> StompDriver:
    """The probe in Node or in Chromium (only the one a test needs is started)."""
    found: StompDriver = request.getfixturevalue(f"{request.param}_driver")
    return found


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def connect(
    driver: StompDriver, url: str, transport: str, name: str = "a", **options: Any
) -> dict[str, Any]:
    await driver.run(cmd="connect", id=name, url=url, transport=transport, **options)
    [connected] = await driver.wait(name, "connected")
    assert (connected["version"], connected["transport"]) == ("1.2", transport)
    return connected


async def subscribe(
    driver: StompDriver, name: str, sub: str, destination: str, **options: Any
) -> None:
    """Subscribe and wait for the receipt, so later sends find the subscription."""
    receipt = unique("sub")
    await driver.run(
        cmd="subscribe", id=name, sub=sub, destination=destination, receipt=receipt, **options
    )
    await wait_receipt(driver, name, receipt)


async def wait_receipt(driver: StompDriver, name: str, receipt: str) -> None:
    """Wait until ``receipt`` came back on connection ``name``."""
    while True:
        seen = await driver.seen(name, "receipt")
        if any(e["receipt"] == receipt for e in seen):
            return
        await driver.wait(name, "receipt", len(seen) + 1)


async def delivered(
    driver: StompDriver, sender: str, destination: str, body: str, *, to: str
) -> None:
    """``sender`` publishes ``body``, and it is the next (and only) message ``to`` gets."""
    await driver.run(cmd="publish", id=sender, destination=destination, body=body)
    [message] = await driver.wait(to, "message")
    assert message["body"] == body


def bodies(events: list[dict[str, Any]], sub: str | None = None) -> list[str]:
    return [e["body"] for e in events if sub is None or e["sub"] == sub]


async def test_subscribe_send_and_receipts(
    driver: StompDriver, server: str, transport: str
) -> None:
    await connect(driver, server + "/stomp", transport)
    topic = "/topic/" + unique("news")
    await subscribe(driver, "a", "s1", topic)
    await driver.run(
        cmd="publish",
        id="a",
        destination=topic,
        body="héllo, wörld 😀",
        receipt="pub-1",
        headers={"x-trace": "a:b"},
    )
    await wait_receipt(driver, "a", "pub-1")
    [message] = await driver.wait("a", "message")
    assert message["body"] == "héllo, wörld 😀"
    headers = message["headers"]
    assert (headers["destination"], headers["subscription"]) == (topic, "s1")
    assert headers["content-type"] == "text/plain;charset=utf-8"
    assert headers["x-trace"] == "a:b"  # escaped as \c on the wire both ways
    assert headers["message-id"]
    assert "ack" not in headers  # auto mode


async def test_app_destinations_reply_and_publish(
    driver: StompDriver, server: str, transport: str
) -> None:
    await connect(driver, server + "/stomp", transport)
    await subscribe(driver, "a", "echo", "/user/queue/echo")
    await subscribe(driver, "a", "shout", "/topic/shout")
    await driver.run(cmd="publish", id="a", destination="/app/echo", body="ping", receipt="e")
    await wait_receipt(driver, "a", "e")
    await driver.run(cmd="publish", id="a", destination="/app/shout", body="hey", receipt="s")
    await wait_receipt(driver, "a", "s")
    received = await driver.wait("a", "message", 2)
    assert bodies(received, "echo") == ["ping"]
    assert "HEY" in bodies(received, "shout")  # other tests may shout too


async def test_client_individual_acks_settle_messages(
    driver: StompDriver, server: str, transport: str
) -> None:
    queue = "/queue/" + unique("acks")
    await connect(driver, server + "/stomp", transport, "consumer")
    await connect(driver, server + "/stomp", transport, "producer")
    await subscribe(driver, "consumer", "q", queue, ack="client-individual", settle="ack")
    for i in range(5):
        await driver.run(cmd="publish", id="producer", destination=queue, body=f"m{i}")
    received = await driver.wait("consumer", "message", 5)
    assert bodies(received) == [f"m{i}" for i in range(5)]
    assert all(e["headers"]["ack"] for e in received)
    for event in received:  # every ACK was receipted by the server
        await wait_receipt(driver, "consumer", "ack-" + event["headers"]["message-id"])
    await driver.run(cmd="disconnect", id="consumer")
    await driver.wait("consumer", "disconnected")
    # Were any left unacknowledged, the broker would hand them to the next consumer
    # ahead of anything sent later.
    await connect(driver, server + "/stomp", transport, "next")
    await subscribe(driver, "next", "q", queue)
    await delivered(driver, "producer", queue, "marker", to="next")


async def test_nack_redelivers_to_the_other_consumer(
    driver: StompDriver, server: str, transport: str
) -> None:
    queue = "/queue/" + unique("nack")
    await connect(driver, server + "/stomp", transport, "refuser")
    await connect(driver, server + "/stomp", transport, "taker")
    await subscribe(driver, "refuser", "q", queue, ack="client-individual", settle="nack")
    await subscribe(driver, "taker", "q", queue, ack="client-individual", settle="ack")
    await driver.run(cmd="publish", id="taker", destination=queue, body="hot potato")
    [refused] = await driver.wait("refuser", "message")
    [taken] = await driver.wait("taker", "message")
    assert refused["body"] == taken["body"] == "hot potato"
    assert taken["headers"]["redelivered"] == "true"


async def test_two_consumers_share_a_queue(
    driver: StompDriver, server: str, transport: str
) -> None:
    queue = "/queue/" + unique("work")
    for name in ("one", "two", "producer"):
        await connect(driver, server + "/stomp", transport, name)
    for name in ("one", "two"):
        await subscribe(driver, name, "w", queue, ack="client-individual", settle="ack")
    sent = [f"job-{i:02d}" for i in range(20)]
    for body in sent:
        await driver.run(cmd="publish", id="producer", destination=queue, body=body)
    await driver.wait_total(["one", "two"], "message", 20)
    await driver.wait_total(["one", "two"], "receipt", 20 + 2)  # 20 acks + 2 subscribes
    # The queue keeps its order, so once this marker is in, anything else would be too.
    await driver.run(cmd="publish", id="producer", destination=queue, body="marker")
    received = await driver.wait_total(["one", "two"], "message", 21)
    got = {name: bodies([e for e in received if e["id"] == name]) for name in ("one", "two")}
    jobs = [b for b in got["one"] + got["two"] if b != "marker"]
    assert sorted(jobs) == sent  # every message exactly once
    assert all(8 <= len([b for b in got[n] if b != "marker"]) <= 12 for n in got), got


async def test_heart_beats_keep_an_idle_connection_alive(
    driver: StompDriver, server: str, transport: str
) -> None:
    await connect(driver, server + "/stomp-hb", transport, incoming=400, outgoing=400)
    await driver.wait("a", "heartbeat", 4)  # > 3 x 400 ms: longer than the server's window
    assert await driver.seen("a", "stomp-error") == []
    assert await driver.seen("a", "close") == []
    topic = "/topic/" + unique("alive")
    await subscribe(driver, "a", "s", topic)
    await delivered(driver, "a", topic, "still here", to="a")


async def test_silent_client_is_disconnected_with_an_error(
    driver: StompDriver, server: str, transport: str
) -> None:
    await connect(driver, server + "/stomp-hb", transport, outgoing=400)
    await driver.run(cmd="mute", id="a")
    [error] = await driver.wait("a", "stomp-error")
    assert error["message"] == (
        "no heart-beat from the client for 1200 ms (negotiated 400 ms, tolerance x3)"
    )
    [closed] = await driver.wait("a", "close")
    assert (closed["code"], closed["reason"]) == (1002, "STOMP error")
