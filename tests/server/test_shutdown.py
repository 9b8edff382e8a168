"""Graceful shutdown: every open session, on every kind of receiver, is told
``c[1001,"Going away"]`` (raw WebSocket: close code 1001), its ``on_close`` runs, and
nothing is left running, with aiohttp's test server and with a production-style one."""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse, WSMsgType, web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer

from sockjs_gateway import Endpoint, Session, SockJSOptions, add_endpoint, drain
from sockjs_gateway.server.hooks import SessionRecord
from tests.backplane.relay_app import OPTIONS
from tests.backplane.relaying import memory_nodes, opened, poll
from tests.conftest import RecordingHandler, library_tasks
from tests.helpers import TIMEOUT, assert_forgotten, kept

Client = TestClient[web.Request, web.Application]
GOING_AWAY = 'c[1001,"Going away"]'


class ProductionServer(TestServer):
    """aiohttp's production default ``handler_cancellation=False`` (``web.run_app``,
    ``python -m sockjs_gateway serve``); the plain test server turns it on."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        kwargs["handler_cancellation"] = False
        return await super()._make_runner(**kwargs)


@pytest.fixture(params=["test-server", "production-server"])
def flavour(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


async def start(
    aiohttp_client: Any, flavour: str, handler: Any, **options: Any
) -> tuple[Client, Endpoint]:
    app = web.Application()
    endpoint = add_endpoint(app, handler, options=SockJSOptions(allowed_origins=("*",), **options))
    server: BaseTestServer = (
        ProductionServer(app) if flavour == "production-server" else TestServer(app)
    )
    client: Client = await aiohttp_client(server)
    return client, endpoint


async def read_line(response: ClientResponse) -> bytes:
    return await asyncio.wait_for(response.content.readline(), TIMEOUT)


async def last_stream_frame(response: ClientResponse, heartbeat: bytes) -> bytes:
    """The next line of a stream that is not a heartbeat (or an empty separator)."""
    line = await read_line(response)
    while line in (heartbeat, b"\r\n"):
        line = await read_line(response)
    return line


async def sessions_open(endpoint: Endpoint, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        # Every receiver must be attached before the shutdown; there is no event for it.
        while sum(s.machine.attached for s in endpoint.registry) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def assert_nothing_left(endpoint: Endpoint, pairs: list[tuple[Session, SessionRecord]]) -> None:
    assert_forgotten(endpoint, pairs)
    assert library_tasks() == []


async def test_every_receiver_is_told_going_away(
    aiohttp_client: Any, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler = RecordingHandler()
    client, endpoint = await start(aiohttp_client, flavour, handler)
    stream = await client.post("/sockjs/000/stream/xhr_streaming")
    events = await client.get("/sockjs/000/events/eventsource")
    assert await read_line(stream) == b"h" * 2048 + b"\n"
    assert await read_line(stream) == b"o\n"
    assert await read_line(events) == b"\r\n"
    assert await read_line(events) == b"data: o\r\n"
    assert (await client.post("/sockjs/000/poller/xhr")).status == 200
    poll = asyncio.ensure_future(client.post("/sockjs/000/poller/xhr"))
    idle = await client.post("/sockjs/000/idle/xhr")  # open, with no receiver attached
    assert await idle.text() == "o\n"
    async with (
        client.ws_connect("/sockjs/000/ws/websocket") as ws,
        client.ws_connect("/sockjs/websocket") as raw,
    ):
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        await handler.wait_for("open", 6)
        await sessions_open(endpoint, 5)
        sessions = kept(endpoint, handler.sessions)
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            closing = asyncio.ensure_future(client.server.close())
            try:
                assert await last_stream_frame(stream, b"h\n") == GOING_AWAY.encode() + b"\n"
                frame = await last_stream_frame(events, b"data: h\r\n")
                assert frame == b"data: " + GOING_AWAY.encode() + b"\r\n"
                polled = await asyncio.wait_for(poll, TIMEOUT)
                assert await polled.text() == GOING_AWAY + "\n"
                msg = await ws.receive(timeout=TIMEOUT)
                while msg.type is WSMsgType.TEXT and msg.data == "h":
                    msg = await ws.receive(timeout=TIMEOUT)
                assert msg.data == GOING_AWAY
                msg = await ws.receive(timeout=TIMEOUT)
                assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1001)
                msg = await raw.receive(timeout=TIMEOUT)
                assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1001)
                await asyncio.wait_for(closing, TIMEOUT * 2)
            finally:
                closing.cancel()
                poll.cancel()
                stream.close()
                events.close()
    closes = await handler.wait_for("close", 6)
    assert sorted((event[1].id, *event[2:]) for event in closes) == [
        (name, 1001, "Going away") for name in ("", "events", "idle", "poller", "stream", "ws")
    ]
    assert_nothing_left(endpoint, sessions)
    assert [str(w.message) for w in caught] == []
    assert [record.getMessage() for record in caplog.records] == []


async def test_shutdown_is_not_held_up_by_a_stuck_handler(
    aiohttp_client: Any, flavour: str
) -> None:
    """A hook that never returns is cancelled once ``disconnect_delay`` is up; the client
    is still told, and nothing is left running."""
    never = asyncio.Event()

    class Stuck(RecordingHandler):
        async def on_message(self, session: Session, message: str) -> None:
            await super().on_message(session, message)
            await never.wait()

    handler = Stuck()
    client, endpoint = await start(aiohttp_client, flavour, handler, disconnect_delay=0.3)
    async with client.ws_connect("/sockjs/000/stuck/websocket") as ws:
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        await ws.send_str('["hang"]')
        assert (await ws.receive(timeout=TIMEOUT)).data == 'a["hang"]'
        sessions = kept(endpoint, handler.sessions)
        await asyncio.wait_for(client.server.close(), TIMEOUT * 2)
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.data == GOING_AWAY
        msg = await ws.receive(timeout=TIMEOUT)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1001)
    assert_nothing_left(endpoint, sessions)


async def test_sessions_closed_before_shutdown_are_forgotten(
    aiohttp_client: Any, flavour: str
) -> None:
    handler = RecordingHandler()
    client, endpoint = await start(aiohttp_client, flavour, handler, disconnect_delay=30.0)
    assert await (await client.post("/sockjs/000/done/xhr")).text() == "o\n"
    (_, session), *_ = await handler.wait_for("open")
    session.close(3000, "Go away!")
    await handler.wait_for("close")
    assert endpoint.session_count == 1  # replaying its close frame
    sessions = kept(endpoint, [session])
    await asyncio.wait_for(client.server.close(), TIMEOUT * 2)
    assert [event[2:] for event in handler.of_kind("close")] == [(3000, "Go away!")]
    assert_nothing_left(endpoint, sessions)


async def test_drain_answers_polls_until_every_client_has_its_close_frame(
    make_endpoint: Any,
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, disconnect_delay=60.0, shutdown_grace=60.0)
    assert await (await client.post("/sockjs/000/poll/xhr")).text() == "o\n"
    draining = asyncio.ensure_future(drain(client.app))
    await handler.wait_for("close")
    assert handler.of_kind("close")[0][2:] == (1001, "Going away")
    assert not draining.done()  # the client has not polled yet
    # A new session meanwhile is refused; the poller's next poll gets its close frame.
    refused = await client.post("/sockjs/000/late/xhr")
    assert (refused.status, await refused.text()) == (503, "Server shutting down.")
    assert await (await client.post("/sockjs/000/poll/xhr")).text() == GOING_AWAY + "\n"
    # Then the grace ends at once, not after its 60 seconds.
    await asyncio.wait_for(draining, TIMEOUT)
    assert endpoint.draining


async def test_a_relaying_node_answers_for_the_whole_grace() -> None:
    """Nodes (or the workers of one server) drain at once, each closing its own sessions.
    A node whose own clients all have their close frame keeps answering: the next poll of
    another node's session may come to it, and is relayed to the owner, which gives the
    close frame. (Before, such a node stopped at once, and that poll failed.)"""
    async with memory_nodes(count=2) as nodes, aiohttp.ClientSession() as http:
        a, b = nodes.urls
        sid = await opened(http, b)  # owned by b; a has no session of its own
        stopping = asyncio.gather(nodes.stop(0), nodes.stop(1))
        await asyncio.sleep(0.2)  # a node with nothing to wait for stops well within this
        assert await poll(http, a, sid) == GOING_AWAY + "\n"
        await asyncio.wait_for(stopping, OPTIONS.grace + TIMEOUT)


async def test_drain_gives_up_after_the_grace(make_endpoint: Any) -> None:
    client, _ = await make_endpoint(disconnect_delay=0.3, shutdown_grace=30.0)
    assert await (await client.post("/sockjs/000/gone/xhr")).text() == "o\n"
    # The client never polls again: the grace (capped at disconnect_delay) runs out.
    await asyncio.wait_for(drain(client.app), TIMEOUT)
