"""sockjs-client 1.6.1 in Node on websocket, xhr-streaming, xhr-polling and eventsource."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from tests.clients.app import make_client_app
from tests.clients.conftest import CLIENT_JS, require, served
from tests.clients.node import NodeClients
from tests.conftest import RecordingHandler

pytestmark = pytest.mark.asyncio(loop_scope="module")

TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling", "eventsource"]


@pytest_asyncio.fixture(loop_scope="module")
async def node() -> AsyncIterator[NodeClients]:
    async with NodeClients.running() as clients:
        yield clients


@pytest_asyncio.fixture(loop_scope="module")
async def server() -> AsyncIterator[tuple[str, RecordingHandler]]:
    require(CLIENT_JS.is_file(), "sockjs-client (npm)")
    recorder = RecordingHandler()
    app = make_client_app(CLIENT_JS, recorder, heartbeat_delay=0.3, disconnect_delay=1.0)
    async with served(app) as url:
        yield url, recorder


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_idle_session_receives_heartbeats(
    node: NodeClients, server: tuple[str, RecordingHandler], transport: str
) -> None:
    url, _ = server
    await node.open("a", url + "/echo", transport)
    await node.wait("a", "heartbeat", count=3)
    assert node.events("a", "close") == []
    await node.send("a", "still here")
    assert await node.messages("a", 1) == ["still here"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_session_survives_response_limit_recycles(
    node: NodeClients, server: tuple[str, RecordingHandler], transport: str
) -> None:
    url, recorder = server
    opens_before = len(recorder.of_kind("open"))
    await node.open("a", url + "/record", transport)
    # 100 messages of ~200 bytes: five times the 4096-byte response limit.
    sent = [f"{i:03d}:" + "x" * 196 for i in range(100)]
    for message in sent:
        await node.send("a", message)
    assert await node.messages("a", 100) == sent
    assert node.events("a", "close") == []
    assert len(recorder.of_kind("open")) == opens_before + 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_reconnects_after_server_restart(node: NodeClients, transport: str) -> None:
    require(CLIENT_JS.is_file(), "sockjs-client (npm)")

    def app() -> web.Application:
        return make_client_app(CLIENT_JS, RecordingHandler(), disconnect_delay=1.0)

    async with served(app()) as url:
        port = int(url.rsplit(":", 1)[1])
        await node.open("a", url + "/echo", transport)
        await node.send("a", "before")
        assert await node.messages("a", 1) == ["before"]
    [closed] = await node.wait("a", "close")
    if transport == "xhr-polling" and closed["code"] == 1006:
        pass  # between two polls when the listener closed: nobody left to tell
    else:
        assert (closed["code"], closed["reason"]) == (1001, "Going away")

    async with served(app(), port=port) as url:
        await node.open("b", url + "/echo", transport)
        await node.send("b", "after")
        assert await node.messages("b", 1) == ["after"]


async def test_broadcast_reaches_every_session_once(
    node: NodeClients, server: tuple[str, RecordingHandler]
) -> None:
    url, _ = server
    for transport in TRANSPORTS:
        await node.open(transport, url + "/broadcast", transport)
    first, last = f"hello {uuid.uuid4()}", "last"
    await node.send("websocket", first)
    await node.send("xhr-polling", last)
    for transport in TRANSPORTS:
        # Broadcasts keep their order per session, so once "last" is in, "first" came
        # before it exactly once and nothing was duplicated.
        received = await node.messages(transport, 2)
        assert received == [first, last], transport
