"""Clients that do not keep up: a full outbound queue and a write stuck past
``send_time_limit``, under each slow-consumer policy, against a real server.

A client that "never reads" is a raw TCP socket with a small receive buffer that performs
its handshake by hand and then never calls ``recv`` again, so the server's writes really
block once the kernel buffers are full.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer

from sockjs_gateway import Endpoint, Session, SockJSOptions, add_endpoint
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT, wait_until
from tests.wsframes import PING, client_frame

Client = TestClient[web.Request, web.Application]
SLOW = (4500, "Slow consumer")
#: One message far bigger than every kernel buffer on the way (a few MiB on loopback).
HUGE = "x" * (16 * 1024 * 1024)
#: Queue limits that the huge message never trips: only the stuck-write timer can act.
ROOMY = {"max_queued_bytes": 64 * 1024 * 1024, "max_queued_messages": 10_000}

WS_HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
STREAM_REQUEST = "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"


class ServingServer(TestServer):
    """A test server with aiohttp's production default ``handler_cancellation=False``
    (what ``web.run_app`` and ``python -m sockjs_gateway serve`` use); aiohttp's own test
    server turns cancellation on, which hides what a production handler goes through."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        kwargs["handler_cancellation"] = False
        return await super()._make_runner(**kwargs)


AiohttpClient = Any  # pytest-aiohttp's client factory


@pytest.fixture
def make_production_endpoint(aiohttp_client: AiohttpClient) -> MakeEndpoint:
    """Like ``make_endpoint``, on a server without handler cancellation."""

    async def make(handler: Any = None, **options: Any) -> tuple[Client, Endpoint]:
        options.setdefault("allowed_origins", ("*",))
        app = web.Application()
        endpoint = add_endpoint(
            app, handler or RecordingHandler(), options=SockJSOptions(**options)
        )
        server: BaseTestServer = ServingServer(app)
        client: Client = await aiohttp_client(server)
        return client, endpoint

    return make


@pytest.fixture(params=["test-server", "production-server"])
def any_endpoint(
    request: pytest.FixtureRequest,
    make_endpoint: MakeEndpoint,
    make_production_endpoint: MakeEndpoint,
) -> MakeEndpoint:
    """Both server flavours, for behaviour that depends on handler cancellation."""
    return make_endpoint if request.param == "test-server" else make_production_endpoint


class StuckClient:
    """A TCP client that sent its request, read the response head, and stopped reading."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def read_to_eof(self, limit: int, timeout: float = TIMEOUT) -> int:
        """Start reading again: how many bytes arrive before the server's EOF or reset.

        Stops early (returning at least ``limit``) if the connection carries that much.
        """
        loop = asyncio.get_running_loop()
        received = 0
        async with asyncio.timeout(timeout):
            while received < limit:
                try:
                    chunk = await loop.sock_recv(self.sock, 1 << 20)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                received += len(chunk)
        return received


@asynccontextmanager
async def stuck_client(client: Client, request: str) -> AsyncIterator[StuckClient]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        async with asyncio.timeout(TIMEOUT):
            assert client.port is not None
            await loop.sock_connect(sock, ("127.0.0.1", client.port))
            await loop.sock_sendall(sock, request.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await loop.sock_recv(sock, 1024)
                assert chunk, head
                head += chunk
        assert head.startswith((b"HTTP/1.1 101", b"HTTP/1.1 200")), head
        yield StuckClient(sock)
    finally:
        sock.close()


Stuck = AbstractAsyncContextManager[StuckClient]


def stuck_websocket(client: Client, session_id: str = "stuck") -> Stuck:
    return stuck_client(client, WS_HANDSHAKE.format(path=f"/sockjs/000/{session_id}/websocket"))


def stuck_raw_websocket(client: Client, session_id: str = "") -> Stuck:
    del session_id  # raw WebSocket URLs carry no session id
    return stuck_client(client, WS_HANDSHAKE.format(path="/sockjs/websocket"))


def stuck_stream(client: Client, session_id: str = "stuck") -> Stuck:
    return stuck_client(
        client, STREAM_REQUEST.format(path=f"/sockjs/000/{session_id}/xhr_streaming")
    )


async def poll(client: Client, session_id: str) -> str:
    async with asyncio.timeout(TIMEOUT):
        response = await client.post(f"/sockjs/000/{session_id}/xhr")
        assert response.status == 200
        return await response.text()


async def opened_session(handler: RecordingHandler, count: int = 1) -> Session:
    events = await handler.wait_for("open", count)
    session: Session = events[count - 1][1]
    return session


def closes(handler: RecordingHandler) -> list[tuple[str, int, str]]:
    return [(event[1].id, event[2], event[3]) for event in handler.of_kind("close")]


# -- a full queue: polling sessions that do not poll ----------------------------------------


async def test_queue_full_in_messages_closes_with_4500(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, max_queued_messages=5)
    assert await poll(client, "lazy") == "o\n"
    outcomes = [endpoint.broadcast(f"m{i}") for i in range(3)]
    assert await poll(client, "other") == "o\n"
    outcomes += [endpoint.broadcast(f"m{i}") for i in range(3, 6)]
    # The sixth broadcast overflows "lazy" only; "other" holds three messages.
    assert outcomes == [1, 1, 1, 2, 2, 1]
    assert await poll(client, "lazy") == 'c[4500,"Slow consumer"]\n'
    await handler.wait_for("close")
    assert closes(handler) == [("lazy", *SLOW)]
    assert endpoint.stats.slow_consumer_closes == 1
    assert await poll(client, "other") == 'a["m3","m4","m5"]\n'
    # A closed session queues nothing more; the other one goes on.
    assert endpoint.broadcast("late") == 1
    assert await poll(client, "lazy") == 'c[4500,"Slow consumer"]\n'


async def test_queue_full_in_bytes_closes_with_4500(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    # Each message is 32 bytes quoted: three fit in 100 bytes, the fourth does not.
    client, endpoint = await make_endpoint(handler, max_queued_bytes=100)
    assert await poll(client, "bytes") == "o\n"
    session = await opened_session(handler)
    outcomes = [session.send("y" * 30) for _ in range(4)]
    assert outcomes == [True, True, True, False]
    assert await poll(client, "bytes") == 'c[4500,"Slow consumer"]\n'
    await handler.wait_for("close")
    assert closes(handler) == [("bytes", *SLOW)]
    assert endpoint.stats.slow_consumer_closes == 1


@pytest.mark.parametrize(
    ("policy", "taken", "kept"),
    [
        pytest.param("drop-newest", [1] * 5 + [0] * 3, range(0, 5), id="drop-newest-keeps-first"),
        pytest.param("drop-oldest", [1] * 8, range(3, 8), id="drop-oldest-keeps-last"),
    ],
)
async def test_a_dropping_policy_keeps_five_messages_and_the_session(
    make_endpoint: MakeEndpoint, policy: str, taken: list[int], kept: range
) -> None:
    """Eight broadcasts to a session that holds five: ``broadcast`` says which ones it
    took (drop-newest refuses the last three, drop-oldest takes all and drops the first)."""
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, max_queued_messages=5, slow_consumer=policy)
    assert await poll(client, "d") == "o\n"
    assert [endpoint.broadcast(f"m{i}") for i in range(8)] == taken
    assert json.loads((await poll(client, "d"))[1:]) == [f"m{i}" for i in kept]
    assert endpoint.stats.slow_consumer_drops == 3
    assert endpoint.stats.slow_consumer_closes == 0
    # The session goes on.
    endpoint.broadcast("after")
    assert await poll(client, "d") == 'a["after"]\n'
    assert handler.of_kind("close") == []


async def test_drop_oldest_by_bytes(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(
        handler, max_queued_bytes=100, slow_consumer="drop-oldest"
    )
    assert await poll(client, "dob") == "o\n"
    for i in range(5):
        endpoint.broadcast(f"{i}" * 30)  # 32 bytes quoted: three fit
    assert json.loads((await poll(client, "dob"))[1:]) == ["2" * 30, "3" * 30, "4" * 30]
    assert endpoint.stats.slow_consumer_drops == 2


# -- a stuck write: the timer acts, though nothing more is sent ----------------------------


@pytest.mark.parametrize("route", ["websocket", "raw-websocket"])
async def test_stuck_websocket_is_closed_and_cut_by_the_timer(
    any_endpoint: MakeEndpoint, route: str
) -> None:
    handler = RecordingHandler()
    client, endpoint = await any_endpoint(handler, send_time_limit=0.3, **ROOMY)
    connect = stuck_websocket if route == "websocket" else stuck_raw_websocket
    async with connect(client) as stuck:
        session = await opened_session(handler)
        # One message, then nothing: only the timer can notice the write never ends.
        assert endpoint.broadcast(HUGE) == 1
        await handler.wait_for("close")
        assert closes(handler) == [(session.id, *SLOW)]
        assert endpoint.stats.slow_consumer_closes == 1
        # The connection is cut: the client gets EOF before the message is through.
        assert await stuck.read_to_eof(len(HUGE)) < len(HUGE)
        await wait_until(lambda: endpoint.session_count == 0)


@pytest.mark.parametrize("route", ["websocket", "raw-websocket"])
async def test_ping_flood_without_reading_is_a_slow_consumer(
    make_endpoint: MakeEndpoint, route: str
) -> None:
    """Pongs are writes like any other: a client that pings and never reads gets stuck
    writes, and the slow-consumer policy closes it, though no message was ever sent."""
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, send_time_limit=0.3)
    connect = stuck_websocket if route == "websocket" else stuck_raw_websocket
    pings = memoryview(client_frame(PING, b"p" * 125) * 512)
    async with connect(client) as stuck:
        session = await opened_session(handler)
        pending = pings
        async with asyncio.timeout(TIMEOUT):  # bounded: the server stops reading, then cuts
            while not session.closed:
                try:
                    sent = stuck.sock.send(pending)
                except BlockingIOError:
                    await asyncio.sleep(0.02)  # the server stopped reading; its timer runs
                    continue
                except ConnectionError:
                    break
                pending = pending[sent:] or pings
                await asyncio.sleep(0)
    assert closes(handler) == [(session.id, *SLOW)]
    assert endpoint.stats.slow_consumer_closes == 1


async def test_stuck_xhr_streaming_is_closed_and_cut_by_the_timer(
    any_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, endpoint = await any_endpoint(
        handler, send_time_limit=0.3, response_limit=1 << 30, **ROOMY
    )
    async with stuck_stream(client, "slowstream") as stuck:
        await opened_session(handler)
        assert endpoint.broadcast(HUGE) == 1
        await handler.wait_for("close")
        assert closes(handler) == [("slowstream", *SLOW)]
        assert await stuck.read_to_eof(len(HUGE)) < len(HUGE)
    # The session replays its close to whoever comes back for it.
    assert await poll(client, "slowstream") == 'c[4500,"Slow consumer"]\n'
    assert endpoint.stats.slow_consumer_closes == 1


async def test_cutting_a_stuck_stream_logs_no_error(
    any_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """Cutting off a slow consumer is policy, not a server fault: no traceback in the log."""
    handler = RecordingHandler()
    client, endpoint = await any_endpoint(
        handler, send_time_limit=0.3, response_limit=1 << 30, **ROOMY
    )
    with caplog.at_level(logging.ERROR):
        async with stuck_stream(client, "quiet") as stuck:
            session = await opened_session(handler)
            async with asyncio.timeout(TIMEOUT):
                while not session.closed:  # a steady stream of big messages
                    endpoint.broadcast("q" * 65536)
                    await asyncio.sleep(0.001)
            await handler.wait_for("close")
            assert closes(handler) == [("quiet", *SLOW)]
            assert await stuck.read_to_eof(len(HUGE)) < len(HUGE)
        assert await poll(client, "quiet") == 'c[4500,"Slow consumer"]\n'
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


@pytest.mark.parametrize("route", ["websocket", "xhr-streaming"])
async def test_queue_overflow_while_stuck_cuts_the_connection(
    make_endpoint: MakeEndpoint, route: str
) -> None:
    """The documented "close" policy: the session closes with 4500 and, as its write is
    stuck, the connection is cut, even when the queue (not the timer) tripped first."""
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(
        handler,
        send_time_limit=60.0,  # the timer stays out of it
        max_queued_messages=5,
        max_queued_bytes=64 * 1024 * 1024,
        response_limit=1 << 30,
    )
    connect = stuck_websocket if route == "websocket" else stuck_stream
    async with connect(client, "over") as stuck:
        session = await opened_session(handler)
        endpoint.broadcast(HUGE)
        await wait_until(lambda: not session.machine.has_frames())  # the write has begun
        for i in range(6):
            endpoint.broadcast(f"m{i}")
        await handler.wait_for("close")
        assert closes(handler) == [("over", *SLOW)]
        assert await stuck.read_to_eof(len(HUGE), timeout=3.0) < len(HUGE)


# -- one stuck session never holds up the others ----------------------------------------------


async def collect(ws: Any, count: int) -> list[str]:
    """Messages from ``a[...]`` frames until ``count`` arrived."""
    messages: list[str] = []
    while len(messages) < count:
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type is WSMsgType.TEXT, msg
        if msg.data.startswith("a"):
            messages.extend(json.loads(msg.data[1:]))
    return messages


@pytest.mark.parametrize("policy", ["close", "drop-oldest", "drop-newest"])
async def test_broadcast_never_waits_on_a_stuck_session(
    make_endpoint: MakeEndpoint, policy: str
) -> None:
    handler = RecordingHandler()
    limits = {"max_queued_messages": 20, "max_queued_bytes": 2 * 1024 * 1024}
    client, endpoint = await make_endpoint(
        handler, send_time_limit=0.3, slow_consumer=policy, **limits
    )
    count, chunk = 200, "z" * (64 * 1024)
    async with (
        stuck_websocket(client, "stuck"),
        client.ws_connect("/sockjs/000/r1/websocket", max_msg_size=0) as reader1,
        client.ws_connect("/sockjs/000/r2/websocket", max_msg_size=0) as reader2,
    ):
        await handler.wait_for("open", 3)
        slow = next(s for s in handler.sessions if s.id == "stuck")
        readers = [asyncio.ensure_future(collect(ws, count + 1)) for ws in (reader1, reader2)]
        try:
            peak_messages = peak_bytes = 0
            for i in range(count):
                endpoint.broadcast(f"{i}:{chunk}")
                machine: Any = slow.machine
                peak_messages = max(peak_messages, len(machine._pending))
                peak_bytes = max(peak_bytes, machine._pending_bytes)
                await asyncio.sleep(0.002)  # the whole run spans the send time limit
            endpoint.broadcast("end")
            done = await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT * 2)
        finally:
            for task in readers:
                task.cancel()
        expected = [f"{i}:{chunk}" for i in range(count)] + ["end"]
        assert done[0] == expected
        assert done[1] == expected
        # The stuck session's queue stayed within its limits all along.
        assert peak_messages <= limits["max_queued_messages"]
        assert peak_bytes <= limits["max_queued_bytes"]
        if policy == "close":
            await handler.wait_for("close")
            assert closes(handler) == [("stuck", *SLOW)]
        else:
            assert endpoint.stats.slow_consumer_drops > 0
            assert not slow.closed
    stats = endpoint.stats
    assert stats.slow_consumer_closes == (1 if policy == "close" else 0)
