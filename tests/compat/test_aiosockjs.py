"""One aio-libs handler, two servers: aio-libs ``sockjs`` 0.13 and our drop-in.

Every test here takes ``sockjs``, the module under test (aio-libs' ``sockjs`` or
``sockjs_gateway.compat.aiosockjs``), so the application code is the same for both and only
the import differs. Where the two should agree, one assertion covers both; where aio-libs
is wrong (docs/migration.md lists it), the test states what each one does, so the notes
stay true.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.clients.conftest import require, start
from tests.clients.node import NodeClients
from tests.helpers import wait_until

# aio-libs keeps its managers under a string app key.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")

AIO = "sockjs"
OURS = "sockjs_gateway.compat.aiosockjs"
Heard = list[tuple[str, str, Any]]


@pytest.fixture(params=[pytest.param(AIO, id="aiolibs"), pytest.param(OURS, id="gateway")])
def sockjs(request: pytest.FixtureRequest) -> ModuleType:
    try:
        return importlib.import_module(request.param)
    except ImportError:
        require(False, "sockjs 0.13 (PyPI, the test extra)")
        raise


@pytest_asyncio.fixture
async def node() -> AsyncIterator[NodeClients]:
    async with NodeClients.running() as clients:
        yield clients


def chat_app(sockjs: ModuleType, heard: Heard) -> web.Application:
    """aio-libs' examples/chat.py, recording what its handler hears."""
    MsgType = sockjs.MsgType

    async def chat_handler(manager: Any, session: Any, msg: Any) -> None:
        data = "error" if isinstance(msg.data, BaseException) else msg.data
        heard.append((session.id, msg.type.name, data))
        if msg.type == MsgType.OPEN:
            manager.broadcast("Someone joined.")
        elif msg.type == MsgType.MESSAGE:
            manager.broadcast(msg.data)
        elif msg.type == MsgType.CLOSED:
            manager.broadcast("Someone left.")

    app = web.Application()
    # A short heartbeat: aio-libs only notices a vanished HTTP client when it next writes.
    sockjs.add_endpoint(
        app, chat_handler, name="chat", prefix="/sockjs/", heartbeat_delay=2, disconnect_delay=1
    )
    return app


def opened(heard: Heard) -> list[str]:
    """The ids of the sessions the handler heard open, in order."""
    return [session_id for session_id, kind, _ in heard if kind == "OPEN"]


def echo_app(sockjs: ModuleType, **endpoint: Any) -> web.Application:
    """aio-libs' test-server echo, broadcasting too. Streaming tests pass a short
    ``heartbeat_delay``, or aio-libs holds the server's shutdown until its next write."""

    async def echo(manager: Any, session: Any, msg: Any) -> None:
        if msg.type == sockjs.MsgType.MESSAGE:
            session.send(msg.data)
            manager.broadcast(msg.data)

    app = web.Application()
    sockjs.add_endpoint(app, echo, name="echo", prefix="/echo", **endpoint)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    return await start(app)


async def stop(node: NodeClients, runner: web.AppRunner) -> None:
    """Clients first: aio-libs keeps an open stream going through aiohttp's graceful
    shutdown (60 s), as it only closes sessions in ``on_cleanup``, which comes after."""
    await node.stop()
    await runner.cleanup()


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
async def test_chat_example_behaves_the_same(
    sockjs: ModuleType, node: NodeClients, transport: str
) -> None:
    heard: Heard = []
    runner, url = await serve(chat_app(sockjs, heard))
    try:
        await node.open("alice", url + "/sockjs", transport)
        assert await node.messages("alice", 1) == ["Someone joined."]
        await node.open("bob", url + "/sockjs", transport)
        assert await node.messages("bob", 1) == ["Someone joined."]
        await node.send("alice", "hi from alice")
        await node.messages("bob", 2)
        await node.send("bob", "hi from bob")
        await node.messages("alice", 4)
        assert await node.messages("bob", 3) == ["Someone joined.", "hi from alice", "hi from bob"]
        if transport == "xhr-polling":
            # Close bob while a poll is held: aio-libs never expires a polling session whose
            # client leaves between polls (test_vanished_poller_is_closed). Bob's next poll
            # is held for a heartbeat_delay (2 s) unless a message comes first.
            bob_session = sockjs.get_manager("chat", runner.app).get(opened(heard)[1])
            await wait_until(lambda: bob_session.acquired)
        await node.close("bob")
        # aio-libs says "left" at its next garbage-collection sweep (every 5 s, after it
        # noticed the client gone): allow two sweeps and a loaded machine.
        assert await node.messages("alice", 5, timeout=30) == [
            "Someone joined.",
            "Someone joined.",
            "hi from alice",
            "hi from bob",
            "Someone left.",
        ]
        bob = opened(heard)[1]
        # A WebSocket is closed cleanly; an aborted HTTP request is an error.
        closed_with = None if transport == "websocket" else "error"
        assert [event[1:] for event in heard if event[0] == bob] == [
            ("OPEN", None),
            ("MESSAGE", "hi from bob"),
            ("CLOSE", closed_with),
            ("CLOSED", None),
        ]
    finally:
        await stop(node, runner)


async def test_eventsource_percent_escaping(sockjs: ModuleType, node: NodeClients) -> None:
    # sockjs-client decodeURI()s EventSource data: "%" must be sent as "%25". aio-libs
    # does not escape, so "50%25" arrives as "50%" (and a bare "100%" kills the client
    # with URIError, which is why only the gateway gets that one).
    runner, url = await serve(echo_app(sockjs, heartbeat_delay=1))
    try:
        await node.open("a", url + "/echo", "eventsource")
        await node.send("a", "50%25 off")
        [echoed, _] = await node.messages("a", 2)
        assert echoed == ("50% off" if sockjs.__name__ == AIO else "50%25 off")
        if sockjs.__name__ == OURS:
            await node.send("a", "height: 100%")
            assert (await node.messages("a", 4))[2:] == ["height: 100%"] * 2
    finally:
        await stop(node, runner)


async def test_jsessionid_only_when_cookie_needed(sockjs: ModuleType) -> None:
    runner, url = await serve(echo_app(sockjs, cookie_needed=False))
    try:
        async with aiohttp.ClientSession() as http, http.post(url + "/echo/0/s1/xhr") as reply:
            assert await reply.text() == "o\n"
            cookies = reply.headers.getall("Set-Cookie", [])
        # aio-libs sets JSESSIONID=dummy whatever cookie_needed says.
        assert cookies == (["JSESSIONID=dummy; Path=/"] if sockjs.__name__ == AIO else [])
    finally:
        await runner.cleanup()


async def test_websocket_from_another_origin(sockjs: ModuleType) -> None:
    runner, url = await serve(echo_app(sockjs))
    headers = {"Origin": "https://evil.example"}
    try:
        async with aiohttp.ClientSession() as http:
            if sockjs.__name__ == AIO:  # no origin check: cross-site WebSocket hijacking
                async with http.ws_connect(url + "/echo/0/s1/websocket", headers=headers) as ws:
                    assert (await ws.receive_str()) == "o"
            else:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(url + "/echo/0/s1/websocket", headers=headers)
                assert refused.value.status == 403
    finally:
        await runner.cleanup()


async def test_broadcast_to_raw_websocket(sockjs: ModuleType) -> None:
    runner, url = await serve(echo_app(sockjs))
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url + "/echo/websocket") as ws:
            await ws.send_str("hello")
            assert await ws.receive_str() == "hello"  # session.send
            broadcast = await ws.receive_str()
        # aio-libs cuts its pre-encoded a["..."] frame down to the JSON string.
        assert broadcast == ('"hello"' if sockjs.__name__ == AIO else "hello")
    finally:
        await runner.cleanup()


async def test_htmlfile_script_injection(sockjs: ModuleType) -> None:
    attack = "</script><script>alert(1)</script>"

    async def greet(manager: Any, session: Any, msg: Any) -> None:
        if msg.type == sockjs.MsgType.OPEN:
            session.send(attack)

    app = web.Application()
    sockjs.add_endpoint(app, greet, name="greet", prefix="/greet", heartbeat_delay=1)
    runner, url = await serve(app)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/greet/0/s1/htmlfile?c=cb", headers={"Referer": url + "/"}) as reply,
        ):
            body = ""
            while "alert" not in body:
                body += (await asyncio.wait_for(reply.content.readany(), 5)).decode()
        # aio-libs' stdlib JSON leaves "</script>" as is: the message ends the script
        # element and runs as HTML in the page.
        assert (attack in body) is (sockjs.__name__ == AIO)
    finally:
        await runner.cleanup()


async def test_vanished_poller_is_closed(sockjs: ModuleType) -> None:
    # A polling client that goes away between two polls. aio-libs gives a session an
    # expiry only when a transport fails, never when a poll ends, so its sweep (every 5 s)
    # never closes this one: CLOSED never comes and the session is kept for ever. The
    # gateway closes it disconnect_delay (1 s) after the last poll.
    heard: Heard = []
    runner, url = await serve(chat_app(sockjs, heard))
    try:
        async with aiohttp.ClientSession() as http, http.post(url + "/sockjs/0/s1/xhr") as reply:
            assert await reply.text() == "o\n"
        manager = sockjs.get_manager("chat", runner.app)
        if sockjs.__name__ == AIO:
            await asyncio.sleep(6.5)  # past the first sweep, at 5 s
            assert [kind for _, kind, _ in heard] == ["OPEN"]
            assert manager.get("s1").state == sockjs.SessionState.OPEN
        else:
            await wait_until(lambda: len(heard) == 3)
            assert [kind for _, kind, _ in heard] == ["OPEN", "CLOSE", "CLOSED"]
            assert manager.get("s1", default=None) is None
    finally:
        await runner.cleanup()
