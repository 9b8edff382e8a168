"""Handler isolation against a real server: a bounded inbound queue pushes back on the
client, a slow hook never holds up heartbeats, pings or other sessions, a failing hook
closes only its own session, and ``run_blocking`` keeps blocking work off the loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

from aiohttp import ClientResponse, WSMsgType, web
from aiohttp.test_utils import TestClient

from sockjs_gateway import Session, run_blocking
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT, wait_until

Client = TestClient[web.Request, web.Application]
XHR_PRELUDE = b"h" * 2048 + b"\n"


@dataclass
class GatedHandler(RecordingHandler):
    """Messages starting with "wait" are held until :attr:`gate` opens, then recorded
    and echoed like every other message."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0

    async def on_message(self, session: Session, message: str) -> None:
        if message.startswith("wait"):
            self.held += 1
            self._changed.set()
            await asyncio.wait_for(self.gate.wait(), TIMEOUT * 2)
        await super().on_message(session, message)


async def poll(client: Client, session_id: str) -> str:
    async with asyncio.timeout(TIMEOUT):
        response = await client.post(f"/sockjs/000/{session_id}/xhr")
        assert response.status == 200
        return await response.text()


async def send(client: Client, session_id: str, *messages: str) -> int:
    async with asyncio.timeout(TIMEOUT * 2):
        response = await client.post(
            f"/sockjs/000/{session_id}/xhr_send", data=json.dumps(list(messages))
        )
        await response.read()
        return response.status


async def polled_messages(client: Client, session_id: str, count: int) -> list[str]:
    """Poll until ``count`` messages came back (heartbeats skipped)."""
    messages: list[str] = []
    while len(messages) < count:
        body = await poll(client, session_id)
        if body.startswith("a"):
            messages.extend(json.loads(body[1:]))
        else:
            assert body == "h\n", body
    return messages


async def read_line(response: ClientResponse) -> bytes:
    return await asyncio.wait_for(response.content.readline(), TIMEOUT)


# -- a bounded inbound queue -------------------------------------------------------------


async def test_xhr_send_waits_while_the_handler_is_behind(make_endpoint: MakeEndpoint) -> None:
    handler = GatedHandler()
    client, endpoint = await make_endpoint(handler, max_inbound_messages=3)
    assert await poll(client, "bp") == "o\n"
    session = endpoint.registry.get("bp")
    assert session is not None
    # Three messages fit in the queue (the first one is in the handler already).
    for i in range(3):
        assert await send(client, "bp", f"wait{i}") == 204
    await handler.wait_until(lambda: handler.held == 1)
    # The fourth request is held back until the handler catches up...
    fourth = asyncio.ensure_future(send(client, "bp", "wait3"))
    fifth: asyncio.Future[int] | None = None
    try:
        record = endpoint.registry.record(session)
        assert record is not None
        await wait_until(lambda: record.space is not None and not record.space.done())
        fifth = asyncio.ensure_future(send(client, "bp", "wait4", "wait5"))
        done, _ = await asyncio.wait([fourth, fifth], timeout=0.3)
        assert done == set()
        assert endpoint.stats.messages_in == 3
        assert handler.of_kind("message") == []
        # ...then every request completes and the messages arrive in order.
        handler.gate.set()
        assert await asyncio.wait_for(fourth, TIMEOUT) == 204
        assert await asyncio.wait_for(fifth, TIMEOUT) == 204
    finally:
        fourth.cancel()
        if fifth is not None:
            fifth.cancel()
    expected = [f"wait{i}" for i in range(6)]
    await handler.wait_for("message", 6)
    assert [event[2] for event in handler.of_kind("message")] == expected
    assert await polled_messages(client, "bp", 6) == expected
    assert endpoint.stats.messages_in == 6


async def test_websocket_stops_reading_while_the_handler_is_behind(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = GatedHandler()
    client, endpoint = await make_endpoint(handler, max_inbound_messages=3)
    async with client.ws_connect("/sockjs/000/wsbp/websocket") as ws:
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        for i in range(10):
            await ws.send_str(json.dumps([f"wait{i}"]))
        await handler.wait_until(lambda: handler.held == 1)
        await wait_until(lambda: endpoint.stats.messages_in == 3)
        session = handler.sessions[0]
        # Nothing past the bound is taken in while the handler is stuck.
        await asyncio.sleep(0.2)
        assert endpoint.stats.messages_in == 3
        record = endpoint.registry.record(session)
        assert record is not None
        assert record.inbound <= 3
        handler.gate.set()
        echoed: list[str] = []
        while len(echoed) < 10:
            msg = await ws.receive(timeout=TIMEOUT)
            assert msg.type is WSMsgType.TEXT
            if msg.data.startswith("a"):
                echoed.extend(json.loads(msg.data[1:]))
    assert echoed == [f"wait{i}" for i in range(10)]


# -- a slow handler holds up nothing else ----------------------------------------------------


async def test_slow_handler_does_not_delay_heartbeats_or_other_sessions(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = GatedHandler()
    client, _ = await make_endpoint(handler, heartbeat_delay=0.2)
    stream = await asyncio.wait_for(client.post("/sockjs/000/slow/xhr_streaming"), TIMEOUT)
    try:
        assert await read_line(stream) == XHR_PRELUDE
        assert await read_line(stream) == b"o\n"
        assert await send(client, "slow", "wait") == 204
        await handler.wait_until(lambda: handler.held == 1)
        # The session's hook is stuck, yet its stream keeps beating...
        assert await read_line(stream) == b"h\n"
        assert await read_line(stream) == b"h\n"
        # ...and another session echoes as usual.
        assert await poll(client, "quick") == "o\n"
        assert await send(client, "quick", "hello") == 204
        assert await polled_messages(client, "quick", 1) == ["hello"]
        handler.gate.set()
        line = await read_line(stream)
        while line == b"h\n":
            line = await read_line(stream)
        assert line == b'a["wait"]\n'
    finally:
        stream.close()


async def test_slow_handler_does_not_stop_raw_websocket_pongs(
    make_endpoint: MakeEndpoint,
) -> None:
    """A raw WebSocket whose reader waits for the handler still answers pings in time."""
    handler = GatedHandler()
    # aiohttp wants each pong within half the heartbeat delay.
    client, endpoint = await make_endpoint(handler, heartbeat_delay=0.5, max_inbound_messages=1)
    async with client.ws_connect("/sockjs/websocket", autoping=False) as ws:
        await ws.send_str("wait1")
        await ws.send_str("wait2")  # the reader now waits for the handler
        await handler.wait_until(lambda: handler.held == 1)
        pings = 0
        while pings < 3:  # several heartbeat periods, each answered
            msg = await ws.receive(timeout=TIMEOUT)
            assert msg.type is WSMsgType.PING, msg
            await ws.pong(msg.data)
            pings += 1
        handler.gate.set()
        echoed: list[str] = []
        while len(echoed) < 2:
            msg = await ws.receive(timeout=TIMEOUT)
            if msg.type is WSMsgType.PING:
                await ws.pong(msg.data)
                continue
            assert msg.type is WSMsgType.TEXT, msg
            echoed.append(msg.data)
    assert echoed == ["wait1", "wait2"]
    assert endpoint.stats.heartbeat_timeouts == 0


# -- a failing handler closes only its own session -------------------------------------------


class FailingHandler(RecordingHandler):
    """Raises on the message "boom" (after recording it) and in ``on_open`` of sessions
    whose id starts with "bad-open"."""

    async def on_open(self, session: Session) -> None:
        await super().on_open(session)
        if session.id.startswith("bad-open"):
            raise RuntimeError("on_open bug")

    async def on_message(self, session: Session, message: str) -> None:
        await super().on_message(session, message)
        if message == "boom":
            raise RuntimeError("on_message bug")


async def test_handler_error_closes_only_its_session_with_1011(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = FailingHandler()
    client, endpoint = await make_endpoint(handler)
    assert await poll(client, "bystander") == "o\n"
    async with client.ws_connect("/sockjs/000/victim/websocket") as ws:
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        await ws.send_str('["boom"]')
        frames = []
        while True:
            msg = await ws.receive(timeout=TIMEOUT)
            if msg.type is not WSMsgType.TEXT:
                break
            frames.append(msg.data)
        assert frames[-1] == 'c[1011,"Internal error"]'
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1011
    closes = await handler.wait_for("close")
    assert [(event[1].id, *event[2:]) for event in closes] == [("victim", 1011, "Internal error")]
    assert endpoint.stats.handler_errors == 1
    assert await send(client, "bystander", "fine") == 204
    assert await polled_messages(client, "bystander", 1) == ["fine"]
    assert len(handler.of_kind("close")) == 1


async def test_on_open_error_closes_the_session_with_1011(make_endpoint: MakeEndpoint) -> None:
    handler = FailingHandler()
    client, endpoint = await make_endpoint(handler)
    assert await poll(client, "bad-open") == "o\n"
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (1011, "Internal error")
    assert await poll(client, "bad-open") == 'c[1011,"Internal error"]\n'
    assert endpoint.stats.handler_errors == 1


# -- run_blocking --------------------------------------------------------------------------


@dataclass
class BlockingHandler(RecordingHandler):
    """On "compute", runs a blocking function through ``run_blocking`` and sends its
    result; echoes everything else."""

    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    threads: list[int] = field(default_factory=list)

    def blocking(self, x: int, *, factor: int) -> str:
        self.threads.append(threading.get_ident())
        self.started.set()
        deadline = time.monotonic() + TIMEOUT * 2
        while not self.release.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)  # blocking work: would freeze the loop if run on it
        return f"result {x * factor}"

    async def on_message(self, session: Session, message: str) -> None:
        if message == "compute":
            session.send(await run_blocking(self.blocking, 6, factor=7))
            return
        await super().on_message(session, message)


async def test_run_blocking_keeps_other_sessions_going(make_endpoint: MakeEndpoint) -> None:
    handler = BlockingHandler()
    client, _ = await make_endpoint(handler)
    assert await poll(client, "worker") == "o\n"
    assert await poll(client, "other") == "o\n"
    assert await send(client, "worker", "compute") == 204
    await asyncio.wait_for(asyncio.to_thread(handler.started.wait, TIMEOUT), TIMEOUT)
    # The blocking function is running; another session still echoes, twice.
    for text in ("one", "two"):
        assert await send(client, "other", text) == 204
        assert await polled_messages(client, "other", 1) == [text]
    assert handler.threads != [threading.get_ident()]
    handler.release.set()
    assert await polled_messages(client, "worker", 1) == ["result 42"]


async def test_the_inbound_queue_is_bounded_in_bytes_too(make_endpoint: MakeEndpoint) -> None:
    handler = GatedHandler()
    client, endpoint = await make_endpoint(handler, max_inbound_bytes=1000)
    async with client.ws_connect("/sockjs/000/wsbytes/websocket") as ws:
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        messages = [f"wait{i}-" + "x" * 600 for i in range(5)]
        for message in messages:
            await ws.send_str(json.dumps([message]))
        await handler.wait_until(lambda: handler.held == 1)
        await wait_until(lambda: endpoint.stats.messages_in == 2)
        await asyncio.sleep(0.2)  # the server reads no further: two messages pass 1000 B
        assert endpoint.stats.messages_in == 2
        handler.gate.set()
        echoed: list[str] = []
        while len(echoed) < len(messages):
            msg = await ws.receive(timeout=TIMEOUT)
            if msg.data.startswith("a"):
                echoed.extend(json.loads(msg.data[1:]))
        assert echoed == messages


async def test_the_endpoint_bound_holds_back_every_session(make_endpoint: MakeEndpoint) -> None:
    handler = GatedHandler()
    client, _ = await make_endpoint(handler, max_inbound_bytes_total=1000)
    assert await poll(client, "a") == "o\n"
    assert await poll(client, "b") == "o\n"
    assert await send(client, "a", "wait-a" + "x" * 1200) == 204  # fills the endpoint
    await handler.wait_until(lambda: handler.held == 1)
    other = asyncio.ensure_future(send(client, "b", "from b"))
    try:
        done, _ = await asyncio.wait([other], timeout=0.3)
        assert done == set()  # b waits although its own queue is empty
        handler.gate.set()
        assert await asyncio.wait_for(other, TIMEOUT) == 204
    finally:
        other.cancel()
    await handler.wait_for("message", 2)
    assert [event[2][:6] for event in handler.of_kind("message")] == ["wait-a", "from b"]
