"""``add_endpoint`` and ``Endpoint``: several endpoints per app, broadcast over every
transport, what a handler learns about the opening request, and option validation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from sockjs_gateway import ENDPOINTS, Session, SessionState, SockJSOptions, add_endpoint
from tests.conftest import MakeEndpoint, RecordingHandler

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
XHR_PRELUDE = b"h" * 2048 + b"\n"


def state_of(session: Session) -> SessionState:
    """The state now (a call, so a type checker does not narrow it across ``close``)."""
    return session.state


async def poll(client: Client, url: str) -> str:
    response = await asyncio.wait_for(client.post(url), 5)
    assert response.status == 200
    return await response.text()


async def test_two_endpoints_are_independent(aiohttp_client: AiohttpClient) -> None:
    app = web.Application()
    first, second = RecordingHandler(), RecordingHandler()
    one = add_endpoint(app, first, prefix="/one", options=SockJSOptions(cookie_needed=True))
    two = add_endpoint(
        app,
        second,
        prefix="/two",
        options=SockJSOptions(disabled_transports=frozenset({"websocket"})),
    )
    assert app[ENDPOINTS] == [one, two]
    client = await aiohttp_client(app)

    info_one = await (await client.get("/one/info")).json()
    info_two = await (await client.get("/two/info")).json()
    assert (info_one["cookie_needed"], info_one["websocket"]) == (True, True)
    assert (info_two["cookie_needed"], info_two["websocket"]) == (False, False)

    # The same session id names two different sessions.
    assert await poll(client, "/one/000/s/xhr") == "o\n"
    assert await poll(client, "/two/000/s/xhr") == "o\n"
    assert (one.session_count, two.session_count) == (1, 1)
    sent = await client.post("/one/000/s/xhr_send", data='["to one"]')
    assert sent.status == 204
    assert await poll(client, "/one/000/s/xhr") == 'a["to one"]\n'
    assert [event[2] for event in await first.wait_for("message")] == ["to one"]
    assert second.of_kind("message") == []

    assert two.broadcast("only two") == 1
    assert await poll(client, "/two/000/s/xhr") == 'a["only two"]\n'
    assert one.broadcast("only one") == 1
    assert await poll(client, "/one/000/s/xhr") == 'a["only one"]\n'

    cookie = (await client.post("/one/000/t/xhr")).headers.get("Set-Cookie", "")
    assert "JSESSIONID=dummy" in cookie
    assert "Set-Cookie" not in (await client.post("/two/000/t/xhr")).headers
    ws_refused = await client.get(
        "/two/000/w/websocket", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
    )
    assert ws_refused.status == 404


async def test_broadcast_reaches_every_transport_once(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler)
    message = 'say "hi" \u2028 \U0001f600'
    quoted = '"say \\"hi\\" \\u2028 \\ud83d\\ude00"'
    assert json.loads(quoted) == message

    assert await poll(client, "/sockjs/000/polling/xhr") == "o\n"
    stream = await client.post("/sockjs/000/streaming/xhr_streaming")
    assert await asyncio.wait_for(stream.content.readline(), 5) == XHR_PRELUDE
    assert await asyncio.wait_for(stream.content.readline(), 5) == b"o\n"
    async with (
        client.ws_connect("/sockjs/000/framed/websocket") as framed,
        client.ws_connect("/sockjs/websocket") as raw,
    ):
        assert (await framed.receive(timeout=5)).data == "o"
        await handler.wait_for("open", 4)

        assert endpoint.broadcast(message) == 4
        assert endpoint.broadcast("second") == 4

        # Queued for the session without a receiver, in one frame, each message once.
        assert await poll(client, "/sockjs/000/polling/xhr") == f'a[{quoted},"second"]\n'
        streamed: list[str] = []
        async with asyncio.timeout(5):
            while len(streamed) < 2:
                line = await stream.content.readline()
                streamed += json.loads(line[1:])
        assert streamed == [message, "second"]
        framed_messages: list[str] = []
        while len(framed_messages) < 2:
            frame = (await framed.receive(timeout=5)).data
            assert frame.startswith("a[")
            framed_messages += json.loads(frame[1:])
        assert framed_messages == [message, "second"]
        assert (await raw.receive(timeout=5)).data == message
        assert (await raw.receive(timeout=5)).data == "second"
        stream.close()


async def test_broadcast_skips_closed_sessions(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler)
    assert await poll(client, "/sockjs/000/a/xhr") == "o\n"
    assert await poll(client, "/sockjs/000/b/xhr") == "o\n"
    (_, first), *_ = await handler.wait_for("open", 2)
    first.close()
    assert endpoint.broadcast("x") == 1


async def test_connection_info_snapshots_the_opening_request(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    response = await client.post(
        "/sockjs/000/info1/xhr?user=ann&user=bob&token=t",
        headers={"X-Custom": "yes", "Cookie": "JSESSIONID=abc; theme=dark"},
    )
    assert await response.text() == "o\n"
    # A later request with other headers does not change the snapshot.
    await client.post("/sockjs/000/info1/xhr_send", data='["x"]', headers={"X-Custom": "no"})
    (_, session), *_ = await handler.wait_for("open")
    await handler.wait_for("message")
    info = session.info
    assert info.remote == "127.0.0.1"
    assert info.headers["X-Custom"] == "yes"
    assert info.headers["x-custom"] == "yes"
    assert info.cookies == {"JSESSIONID": "abc", "theme": "dark"}
    assert info.query.getall("user") == ["ann", "bob"]
    assert info.query["token"] == "t"
    assert info.path == "/sockjs/000/info1/xhr"
    assert info.transport == "xhr-polling"


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("/sockjs/000/t/websocket", "websocket"),
        ("/sockjs/websocket", "raw-websocket"),
    ],
)
async def test_connection_info_of_websockets(
    make_endpoint: MakeEndpoint, url: str, transport: str
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with client.ws_connect(url + "?q=1", headers={"X-Custom": "ws"}):
        (_, session), *_ = await handler.wait_for("open")
    assert session.info.transport == transport
    assert session.info.path == url
    assert session.info.query["q"] == "1"
    assert session.info.headers["X-Custom"] == "ws"
    assert session.info.remote == "127.0.0.1"


@pytest.mark.parametrize(
    ("method", "suffix", "transport"),
    [
        ("POST", "xhr_streaming", "xhr-streaming"),
        ("GET", "eventsource", "eventsource"),
        ("GET", "htmlfile?c=cb", "htmlfile"),
        ("GET", "jsonp?c=cb", "jsonp-polling"),
    ],
)
async def test_connection_info_names_the_http_transport(
    make_endpoint: MakeEndpoint, method: str, suffix: str, transport: str
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    response = await client.request(method, f"/sockjs/000/tr/{suffix}")
    assert response.status == 200
    (_, session), *_ = await handler.wait_for("open")
    assert session.info.transport == transport
    response.close()


async def test_session_state_and_send_after_close(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    assert await poll(client, "/sockjs/000/st/xhr") == "o\n"
    (_, session), *_ = await handler.wait_for("open")
    assert session.state is SessionState.OPEN
    assert not session.closed
    assert session.send("before") is True
    session.close(3001, "done")
    assert state_of(session) is SessionState.CLOSED
    assert session.closed
    assert session.send("after") is False
    session.close(3002, "again")  # closing twice changes nothing
    assert await poll(client, "/sockjs/000/st/xhr") == 'a["before"]\n'
    assert await poll(client, "/sockjs/000/st/xhr") == 'c[3001,"done"]\n'
    closes = await handler.wait_for("close")
    assert [event[2:] for event in closes] == [(3001, "done")]


async def test_websocket_session_state(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with client.ws_connect("/sockjs/000/wst/websocket") as ws:
        (_, session), *_ = await handler.wait_for("open")
        assert session.state is SessionState.OPEN
        await ws.close()
    await handler.wait_for("close")
    assert state_of(session) is SessionState.CLOSED
    assert session.send("after") is False


def test_prefix_must_start_with_slash() -> None:
    with pytest.raises(ValueError, match="prefix"):
        add_endpoint(web.Application(), RecordingHandler(), prefix="sockjs")


async def test_trailing_slash_of_prefix_is_dropped(aiohttp_client: AiohttpClient) -> None:
    app = web.Application()
    endpoint = add_endpoint(app, RecordingHandler(), prefix="/echo/")
    assert endpoint.prefix == "/echo"
    client = await aiohttp_client(app)
    response = await client.get("/echo/info")
    assert response.status == 200


@pytest.mark.parametrize(
    "options",
    [
        {"disabled_transports": frozenset({"carrier-pigeon"})},
        {"disabled_transports": frozenset({"xhr"})},  # the suffix, not the transport name
        {"heartbeat_delay": 0},
        {"heartbeat_delay": -1.0},
        {"disconnect_delay": 0},
        {"disconnect_delay": -0.5},
        {"response_limit": 0},
        {"max_message_bytes": 0},
    ],
)
def test_options_reject_bad_values(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        SockJSOptions(**options)  # type: ignore[arg-type]


def test_options_accept_every_documented_transport_name() -> None:
    names = {
        "websocket",
        "raw-websocket",
        "xhr-polling",
        "xhr-streaming",
        "eventsource",
        "htmlfile",
        "jsonp-polling",
    }
    options = SockJSOptions(disabled_transports=frozenset(names))
    assert not any(options.enabled(name) for name in names)


async def test_disabled_http_transport_is_404(make_endpoint: MakeEndpoint) -> None:
    client, endpoint = await make_endpoint(disabled_transports=frozenset({"xhr-polling"}))
    assert (await client.post("/sockjs/000/x/xhr")).status == 404
    assert endpoint.session_count == 0
    stream = await client.post("/sockjs/000/x/xhr_streaming")
    assert stream.status == 200
    stream.close()


async def test_shutdown_closes_raw_websocket(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler)
    async with client.ws_connect("/sockjs/websocket") as ws:
        await handler.wait_for("open")
        await asyncio.wait_for(client.server.close(), 10)
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE
    closes = await handler.wait_for("close")
    assert closes[0][2:] == (1001, "Going away")
    assert endpoint.session_count == 0


async def test_one_transport_name_as_a_string_disables_just_it(
    make_endpoint: MakeEndpoint,
) -> None:
    client, endpoint = await make_endpoint(disabled_transports="websocket")
    assert endpoint.options.disabled_transports == frozenset({"websocket"})
    info = await (await client.get("/sockjs/info")).json()
    assert info["websocket"] is False
    assert (await client.get("/sockjs/000/w/websocket")).status == 404
    assert await (await client.post("/sockjs/000/x/xhr")).text() == "o\n"


@pytest.mark.parametrize(
    "names",
    [
        {"websocket", "jsonp-polling"},
        ["websocket", "jsonp-polling"],
        ("jsonp-polling", "websocket"),
    ],
    ids=["set", "list", "tuple"],
)
def test_any_iterable_of_names_is_accepted(names: Iterable[str]) -> None:
    options = SockJSOptions(disabled_transports=names)
    assert options.disabled_transports == frozenset({"websocket", "jsonp-polling"})
    assert hash(options) == hash(SockJSOptions(disabled_transports={"jsonp-polling", "websocket"}))


def test_unknown_transport_names_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"\['websocker'\]") as raised:
        SockJSOptions(disabled_transports="websocker")
    assert "raw-websocket" in str(raised.value)  # the known names are listed too


def test_a_second_endpoint_on_the_same_prefix_raises() -> None:
    app = web.Application()
    add_endpoint(app, RecordingHandler(), prefix="/chat")
    add_endpoint(app, RecordingHandler(), prefix="/other")
    with pytest.raises(ValueError, match="already mounted at '/chat'"):
        add_endpoint(app, RecordingHandler(), prefix="/chat/")  # the same, once normalised


def test_shutdown_grace_is_capped_by_disconnect_delay() -> None:
    assert SockJSOptions().grace == 3.0
    assert SockJSOptions(disconnect_delay=1.0).grace == 1.0
    assert SockJSOptions(shutdown_grace=0).grace == 0
    with pytest.raises(ValueError, match="shutdown_grace"):
        SockJSOptions(shutdown_grace=-1)
