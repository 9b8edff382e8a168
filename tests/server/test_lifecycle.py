"""A session's life over time: heartbeats, expiry, interrupted receivers, handler
failures, re-entrant hooks and application shutdown."""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from sockjs_gateway import Endpoint, Session, SessionState
from tests.conftest import MakeEndpoint, RecordingHandler, library_tasks
from tests.helpers import assert_forgotten, kept, wait_until

Client = TestClient[web.Request, web.Application]
XHR_PRELUDE = b"h" * 2048 + b"\n"


async def poll(client: Client, session_id: str, timeout: float = 5.0) -> str:
    """One xhr-polling request; its body."""
    response = await asyncio.wait_for(client.post(f"/sockjs/000/{session_id}/xhr"), timeout)
    assert response.status == 200
    return await response.text()


async def send(client: Client, session_id: str, body: str) -> int:
    response = await client.post(f"/sockjs/000/{session_id}/xhr_send", data=body)
    return response.status


async def read_line(response: ClientResponse, timeout: float = 5.0) -> bytes:
    return await asyncio.wait_for(response.content.readline(), timeout)


async def open_stream(client: Client, session_id: str) -> ClientResponse:
    """An xhr-streaming response past its prelude and ``o`` frame."""
    response = await client.post(f"/sockjs/000/{session_id}/xhr_streaming")
    assert response.status == 200
    assert await read_line(response) == XHR_PRELUDE
    assert await read_line(response) == b"o\n"
    return response


async def attached(endpoint: Endpoint, session_id: str) -> None:
    """Wait until a receiving request for ``session_id`` is attached."""

    def is_attached() -> bool:
        session = endpoint.registry.get(session_id)
        return session is not None and session.machine.attached

    await wait_until(is_attached)


# -- heartbeats ------------------------------------------------------------------------


async def test_xhr_streaming_heartbeat(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(heartbeat_delay=0.2)
    response = await open_stream(client, "hs")
    assert await read_line(response) == b"h\n"
    assert await read_line(response) == b"h\n"
    response.close()


async def test_eventsource_heartbeat(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(heartbeat_delay=0.2)
    response = await client.get("/sockjs/000/es/eventsource")
    assert response.status == 200
    assert await read_line(response) == b"\r\n"
    assert await read_line(response) == b"data: o\r\n"
    assert await read_line(response) == b"\r\n"
    assert await read_line(response) == b"data: h\r\n"
    assert await read_line(response) == b"\r\n"
    response.close()


async def test_idle_poll_returns_heartbeat(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, heartbeat_delay=0.2)
    assert await poll(client, "hp") == "o\n"
    assert await poll(client, "hp") == "h\n"
    assert await send(client, "hp", '["alive"]') == 204
    assert await poll(client, "hp") == 'a["alive"]\n'
    assert handler.of_kind("close") == []


# -- disconnect_delay ----------------------------------------------------------------


async def test_session_expires_without_receiver(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, disconnect_delay=0.3)
    assert await poll(client, "exp") == "o\n"
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (1000, "Session timed out")
    await wait_until(lambda: endpoint.session_count == 0)
    assert await send(client, "exp", '["late"]') == 404
    # The id is free: a new request opens a new session.
    assert await poll(client, "exp") == "o\n"
    opened = await handler.wait_for("open", 2)
    assert opened[0][1] is not opened[1][1]
    assert handler.of_kind("message") == []


async def test_waiting_long_poll_keeps_session_alive(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    # The heartbeat ends the poll only after three disconnect delays.
    client, _ = await make_endpoint(handler, heartbeat_delay=0.6, disconnect_delay=0.2)
    assert await poll(client, "lp") == "o\n"
    assert await poll(client, "lp") == "h\n"
    assert handler.of_kind("close") == []
    assert await send(client, "lp", '["still"]') == 204
    assert await poll(client, "lp") == 'a["still"]\n'


async def test_open_stream_keeps_session_alive(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, heartbeat_delay=0.15, disconnect_delay=0.2)
    response = await open_stream(client, "st")
    for _ in range(4):  # 0.6 s of idling, three disconnect delays
        assert await read_line(response) == b"h\n"
    assert handler.of_kind("close") == []
    assert await send(client, "st", '["still"]') == 204
    line = await read_line(response)
    while line == b"h\n":
        line = await read_line(response)
    assert line == b'a["still"]\n'
    response.close()


async def test_closed_session_replays_close_frame_until_forgotten(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, disconnect_delay=0.3)
    assert await poll(client, "gone") == "o\n"
    (_, session), *_ = await handler.wait_for("open")
    session.close(3000, "Go away!")
    assert await poll(client, "gone") == 'c[3000,"Go away!"]\n'
    assert await poll(client, "gone") == 'c[3000,"Go away!"]\n'
    assert await send(client, "gone", '["x"]') == 404
    await wait_until(lambda: endpoint.session_count == 0)
    assert await poll(client, "gone") == "o\n"
    closes = handler.of_kind("close")
    assert [event[2:] for event in closes] == [(3000, "Go away!")]


# -- receivers that go away --------------------------------------------------------------


async def assert_interrupted(handler: RecordingHandler, client: Client, session_id: str) -> None:
    """The session was closed with 1002 and tells the next poll so."""
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (1002, "Connection interrupted")
    assert await poll(client, session_id) == 'c[1002,"Connection interrupted"]\n'


async def test_aborted_stream_interrupts_session(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    response = await open_stream(client, "ab")
    response.close()  # drops the connection mid-stream
    await assert_interrupted(handler, client, "ab")


async def test_aborted_long_poll_interrupts_session(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler)
    assert await poll(client, "abp") == "o\n"
    assert client.port is not None
    _, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            b"POST /sockjs/000/abp/xhr HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()
        await attached(endpoint, "abp")
    finally:
        writer.close()
        await writer.wait_closed()
    await assert_interrupted(handler, client, "abp")


async def test_second_receiver_gets_2010_and_first_goes_on(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler)
    assert await poll(client, "two") == "o\n"
    first = asyncio.ensure_future(poll(client, "two"))
    try:
        await attached(endpoint, "two")
        assert await poll(client, "two") == 'c[2010,"Another connection still open"]\n'
        assert not first.done()
        assert await send(client, "two", '["ping"]') == 204
        assert await asyncio.wait_for(first, 5) == 'a["ping"]\n'
    finally:
        first.cancel()
    assert handler.of_kind("close") == []


# -- handlers ------------------------------------------------------------------------------


class FailingHandler(RecordingHandler):
    """Raises on the message "boom", echoes the rest."""

    async def on_message(self, session: Session, message: str) -> None:
        await super().on_message(session, message)
        if message == "boom":
            raise RuntimeError("handler bug")


async def test_handler_error_closes_only_its_session(make_endpoint: MakeEndpoint) -> None:
    handler = FailingHandler(echo=False)
    client, _ = await make_endpoint(handler)
    assert await poll(client, "bad") == "o\n"
    assert await poll(client, "good") == "o\n"
    assert await send(client, "bad", '["boom"]') == 204
    closes = await handler.wait_for("close")
    assert [(event[1].id, *event[2:]) for event in closes] == [("bad", 1011, "Internal error")]
    assert await poll(client, "bad") == 'c[1011,"Internal error"]\n'
    handler.echo = True
    assert await send(client, "good", '["fine"]') == 204
    assert await poll(client, "good") == 'a["fine"]\n'


class GreetAndLeave(RecordingHandler):
    """Sends two messages from ``on_open``, then closes the session from it."""

    async def on_open(self, session: Session) -> None:
        await super().on_open(session)
        assert session.send("hello")
        assert session.send("bye")
        session.close(3000, "Go away!")
        assert not session.send("too late")


async def test_send_and_close_inside_on_open_over_streaming(make_endpoint: MakeEndpoint) -> None:
    handler = GreetAndLeave()
    client, endpoint = await make_endpoint(handler)
    response = await client.post("/sockjs/000/greet/xhr_streaming")
    body = await asyncio.wait_for(response.read(), 5)  # the stream ends after the close
    assert body.startswith(XHR_PRELUDE)
    frames = body[len(XHR_PRELUDE) :].decode().splitlines()
    # As on WebSocket below: the messages may share one a[...] frame or not.
    assert frames[0] == "o"
    assert frames[-1] == 'c[3000,"Go away!"]'
    assert [m for frame in frames[1:-1] for m in json.loads(frame[1:])] == ["hello", "bye"]
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (3000, "Go away!")
    session = closes[0][1]
    assert session.state is SessionState.CLOSED
    assert endpoint.session_count == 1  # replays its close frame until disconnect_delay


async def test_send_and_close_inside_on_open_over_websocket(make_endpoint: MakeEndpoint) -> None:
    handler = GreetAndLeave()
    client, _ = await make_endpoint(handler)
    frames: list[str] = []
    async with client.ws_connect("/sockjs/000/greet/websocket") as ws:
        async with asyncio.timeout(5):
            async for msg in ws:
                frames.append(msg.data)
    # Messages may share one a[...] frame or not; what counts is all of them, in order,
    # between the open and the close frame.
    assert frames[0] == "o"
    assert frames[-1] == 'c[3000,"Go away!"]'
    messages = [m for frame in frames[1:-1] for m in json.loads(frame[1:])]
    assert all(frame.startswith("a[") for frame in frames[1:-1])
    assert messages == ["hello", "bye"]
    await handler.wait_for("close")


# -- shutdown ----------------------------------------------------------------------------


async def test_shutdown_says_going_away_and_leaves_nothing(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, heartbeat_delay=0.2)
    stream = await open_stream(client, "down")
    assert await poll(client, "idle") == "o\n"  # a session without a receiver
    async with client.ws_connect("/sockjs/000/ws/websocket") as ws:
        assert (await ws.receive(timeout=5)).data == "o"
        await handler.wait_for("open", 3)
        sessions = kept(endpoint, handler.sessions)

        closing = asyncio.ensure_future(client.server.close())
        try:
            line = await read_line(stream)
            while line == b"h\n":
                line = await read_line(stream)
            assert line == b'c[1001,"Going away"]\n'
            msg = await ws.receive(timeout=5)
            while msg.data == "h":
                msg = await ws.receive(timeout=5)
            assert msg.data == 'c[1001,"Going away"]'
            await asyncio.wait_for(closing, 10)
        finally:
            closing.cancel()

    closes = await handler.wait_for("close", 3)
    assert sorted((event[1].id, *event[2:]) for event in closes) == [
        ("down", 1001, "Going away"),
        ("idle", 1001, "Going away"),
        ("ws", 1001, "Going away"),
    ]
    assert_forgotten(endpoint, sessions)
    assert library_tasks() == []


async def test_send_and_close_inside_on_open_over_polling(make_endpoint: MakeEndpoint) -> None:
    handler = GreetAndLeave()
    client, _ = await make_endpoint(handler)
    assert await poll(client, "greetp") == "o\n"
    await handler.wait_for("close")
    # The session closed while no poll was waiting: what it sent first still arrives.
    assert await poll(client, "greetp") == 'a["hello","bye"]\n'
    assert await poll(client, "greetp") == 'c[3000,"Go away!"]\n'
