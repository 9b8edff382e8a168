"""The drop-in's own API, against our server only: what aio-libs code reaches for beyond
the chat example (managers, session attributes, the close messages, argument checks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sockjs_gateway import SockJSOptions
from sockjs_gateway.compat import aiosockjs as sockjs
from tests.helpers import watch

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


class Recorder:
    """An aio-libs handler that records (session id, type name, data, state name) and
    runs ``then`` on every call."""

    def __init__(self, then: Callable[[Any, Any, Any], None] | None = None) -> None:
        self.heard: list[tuple[str, str, Any, str]] = []
        self.sessions: list[sockjs.Session] = []
        self.then = then
        self.changed = asyncio.Event()

    async def __call__(
        self, manager: sockjs.SessionManager, session: sockjs.Session, msg: sockjs.SockjsMessage
    ) -> None:
        self.heard.append((session.id, msg.type.name, msg.data, session.state.name))
        if msg.type is sockjs.MsgType.OPEN:
            self.sessions.append(session)
        self.changed.set()
        if self.then is not None:
            self.then(manager, session, msg)

    def types(self) -> list[str]:
        return [event[1] for event in self.heard]

    async def until(self, kind: str, count: int = 1) -> None:
        await watch(self.changed, lambda: self.types().count(kind) >= count, 5)


@pytest.fixture
def make_client(aiohttp_client: Callable[..., Awaitable[Client]]) -> MakeClient:
    async def make(app: web.Application) -> Client:
        return await aiohttp_client(app)

    return make


def app_with(handler: Any, **endpoint: Any) -> web.Application:
    app = web.Application()
    sockjs.add_endpoint(app, handler, name="test", prefix="/sockjs", **endpoint)
    return app


async def poll(client: Client, session_id: str = "s1") -> str:
    return await (await client.post(f"/sockjs/0/{session_id}/xhr")).text()


async def send(client: Client, body: str, session_id: str = "s1") -> None:
    assert (await client.post(f"/sockjs/0/{session_id}/xhr_send", data=body)).status == 204


async def test_session_and_manager_attributes(make_client: MakeClient) -> None:
    recorder = Recorder()
    app = app_with(recorder, disconnect_delay=1)
    client = await make_client(app)
    response = await client.post(
        "/sockjs/0/s1/xhr?room=7", headers={"X-Token": "t"}, cookies={"sid": "c"}
    )
    assert await response.text() == "o\n"
    await recorder.until("OPEN")
    manager = sockjs.get_manager("test", app)
    [session] = recorder.sessions
    assert manager.sessions == {"s1": session}
    assert manager.get("s1") is session
    assert manager.get("nope", default=None) is None
    assert list(manager.active_sessions()) == [session]
    assert (session.id, session.manager, session.state) == ("s1", manager, sockjs.SessionState.OPEN)
    request = session.request
    assert request.headers["X-Token"] == "t"
    assert request.cookies["sid"] == "c"
    assert request.query["room"] == "7"
    assert (request.path, request.transport, request.app) == (
        "/sockjs/0/s1/xhr",
        "xhr-polling",
        app,
    )

    await send(client, '["hi"]')
    await recorder.until("MESSAGE")
    # No poll comes back: the session times out, which is the client's doing (CLOSE).
    await recorder.until("CLOSED")
    assert [event[1:] for event in recorder.heard] == [
        ("OPEN", None, "OPEN"),
        ("MESSAGE", "hi", "OPEN"),
        ("CLOSE", None, "CLOSING"),
        ("CLOSED", None, "CLOSED"),
    ]
    assert manager.sessions == {}
    with pytest.raises(KeyError):
        manager.get("s1")


def close_with_4000(manager: Any, session: Any, msg: Any) -> None:
    if msg.type is sockjs.MsgType.MESSAGE:
        session.close(4000, "bye")


def fail(manager: Any, session: Any, msg: Any) -> None:
    if msg.type is sockjs.MsgType.MESSAGE:
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("on_message", "frame"),
    [
        pytest.param(close_with_4000, 'c[4000,"bye"]\n', id="by-the-application"),
        pytest.param(fail, 'c[1011,"Internal error"]\n', id="handler-error-with-1011"),
    ],
)
async def test_a_close_from_the_server_side_gives_closed_only(
    make_client: MakeClient, on_message: Callable[[Any, Any, Any], None], frame: str
) -> None:
    recorder = Recorder(on_message)
    client = await make_client(app_with(recorder))
    assert await poll(client) == "o\n"
    await send(client, '["x"]')
    assert await poll(client) == frame
    await recorder.until("CLOSED")
    assert recorder.types() == ["OPEN", "MESSAGE", "CLOSED"]


async def test_lost_connection_is_an_error_close(make_client: MakeClient) -> None:
    recorder = Recorder()
    client = await make_client(app_with(recorder))
    async with client.post("/sockjs/0/s1/xhr_streaming") as stream:
        await stream.content.readline()
        assert await stream.content.readline() == b"o\n"
        stream.close()  # the client goes away mid-stream
    await recorder.until("CLOSED")
    close = recorder.heard[-2]
    assert close[1] == "CLOSE"
    assert isinstance(close[2], sockjs.SessionInterrupted)
    assert isinstance(close[2], ConnectionError)
    assert (close[2].code, close[2].reason) == (1002, "Connection interrupted")
    assert recorder.sessions[0].interrupted


async def test_shutdown_gives_closed_only(make_client: MakeClient) -> None:
    recorder = Recorder()
    client = await make_client(app_with(recorder))
    assert await poll(client) == "o\n"
    await recorder.until("OPEN")
    await client.close()
    assert recorder.types() == ["OPEN", "CLOSED"]


async def test_broadcast_exclusions_and_send_frame(make_client: MakeClient) -> None:
    def on_message(manager: Any, session: Any, msg: Any) -> None:
        if msg.data == "others":
            manager.broadcast("to others", exclude_session_ids={session.id})
        elif msg.data == "frame":
            session.send_frame('a["one","two"]')

    client = await make_client(app_with(Recorder(on_message)))
    assert await poll(client, "a") == "o\n"
    assert await poll(client, "b") == "o\n"
    await send(client, '["others"]', "a")
    assert await poll(client, "b") == 'a["to others"]\n'
    await send(client, '["frame"]', "a")
    assert await poll(client, "a") == 'a["one","two"]\n'


async def test_sync_handler_and_given_manager(make_client: MakeClient) -> None:
    heard: list[str] = []

    def handler(manager: Any, session: Any, msg: Any) -> None:
        heard.append(msg.type.name)
        if msg.type is sockjs.MsgType.MESSAGE:
            session.send(msg.data.upper())

    app = web.Application()
    manager = sockjs.SessionManager("own", app, handler, heartbeat_delay=3, disconnect_delay=2)
    sockjs.add_endpoint(app, print, name="own", prefix="/sockjs", manager=manager)
    assert manager.started
    assert manager.endpoint is not None
    assert manager.endpoint.options.heartbeat_delay == 3
    client = await make_client(app)
    assert await poll(client) == "o\n"
    await send(client, '["hey"]')
    assert await poll(client) == 'a["HEY"]\n'
    assert heard == ["OPEN", "MESSAGE"]


async def test_websocket_ids_stay_unique(make_client: MakeClient) -> None:
    recorder = Recorder()
    client = await make_client(app_with(recorder))
    async with (
        client.ws_connect("/sockjs/0/same/websocket") as first,
        client.ws_connect("/sockjs/0/same/websocket") as second,
        client.ws_connect("/sockjs/websocket") as raw,
    ):
        assert await first.receive_str() == "o"
        assert await second.receive_str() == "o"
        await raw.send_str("hello")
        await recorder.until("MESSAGE")
        ids = [session.id for session in recorder.sessions]
    assert ids[0] == "same"
    assert ids[1].startswith("same-")
    assert len(ids[1]) == len("same-") + 8
    assert ids[2].isdigit()
    assert len(ids[2]) >= 9  # "%09d" of a random 31-bit number, as in aio-libs


def test_arguments_are_checked() -> None:
    app = web.Application()
    routes = sockjs.add_endpoint(app, Recorder(), prefix="/a/")
    assert routes
    assert all(r.resource and r.resource.canonical.startswith("/a") for r in routes)
    assert sockjs.get_manager("n1000", app).name == "n1000"
    with pytest.raises(ValueError, match="already registered"):
        sockjs.add_endpoint(app, Recorder(), name="n1000", prefix="/b")
    manager = sockjs.SessionManager("x", app, Recorder())
    with pytest.raises(ValueError, match="same name"):
        sockjs.add_endpoint(app, Recorder(), name="y", prefix="/c", manager=manager)
    with pytest.raises(ValueError, match="unknown transports"):
        sockjs.add_endpoint(app, Recorder(), name="d", prefix="/d", disable_transports=["xhr"])
    with pytest.raises(ValueError, match="positive"):
        sockjs.add_endpoint(app, Recorder(), name="e", prefix="/e", heartbeat_delay=0)
    with pytest.warns(UserWarning, match="allowed_origins"):
        sockjs.add_endpoint(app, Recorder(), name="f", prefix="/f", cors_config=object())
    with pytest.raises(KeyError):
        sockjs.get_manager("g", app)


async def test_options_and_transport_names(make_client: MakeClient) -> None:
    app = app_with(
        Recorder(),
        disable_transports=("websocket-raw", "xhr-streaming"),
        cookie_needed=False,
        options=SockJSOptions(allowed_origins=("*",), heartbeat_delay=99),
    )
    client = await make_client(app)
    assert (await client.get("/sockjs/websocket")).status == 404
    assert (await client.post("/sockjs/0/s1/xhr_streaming")).status == 404
    info = await (await client.get("/sockjs/info")).json()
    assert info["cookie_needed"] is False
    endpoint = sockjs.get_manager("test", app).endpoint
    assert endpoint is not None
    # aio-libs' arguments win over the same fields of options; the rest is kept.
    assert endpoint.options.heartbeat_delay == 25
    assert endpoint.options.allowed_origins == ("*",)


def test_old_constant_names() -> None:
    assert sockjs.MSG_OPEN is sockjs.MsgType.OPEN
    assert sockjs.MSG_CLOSED is sockjs.MsgType.CLOSED
    assert sockjs.SockjsMessage(sockjs.MsgType.MESSAGE, "x").tp is sockjs.MsgType.MESSAGE


async def test_closing_every_session_while_iterating_over_the_manager(
    make_client: MakeClient,
) -> None:
    """aio-libs allows ``for s in manager.sessions.values(): s.close()``: close only
    schedules the CLOSED message, so the dict does not change during the loop."""
    recorder = Recorder()
    app = app_with(recorder)
    client = await make_client(app)
    for session_id in ("s1", "s2", "s3"):
        assert await poll(client, session_id) == "o\n"
    await recorder.until("OPEN", 3)
    manager = sockjs.get_manager("test", app)
    for session in manager.sessions.values():
        session.close()
    await recorder.until("CLOSED", 3)
    for session_id in ("s1", "s2", "s3"):
        assert await poll(client, session_id) == 'c[3000,"Go away!"]\n'
