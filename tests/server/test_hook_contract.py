"""The hook contract, on every transport: handlers never learn which transport carries
their traffic.

1. Every hook runs in an asyncio task of its session: never outside a task, never in the
   task of the request or connection that carried the message. ``asyncio.timeout`` and
   aiohttp client calls work; a contextvar set in ``on_open`` is seen by the session's
   later hooks and by no other session; a client going away never cancels a running
   hook; one session's hooks never overlap and keep their order.
2. A hook that fails (raises when called, or inside) is logged once with the session id
   and closes its session with 1011 "Internal error"; ``on_close`` then runs once.
3. ``Session.close()`` only schedules: ``on_close`` runs later, in the closed session's
   own task, so an application may close sessions while iterating over them.

STOMP over WebSocket and over xhr-polling is covered at the end: ``/app`` mappings and
broker hooks are hooks too.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sockjs_gateway import Session, SockJSOptions, add_endpoint
from sockjs_gateway.stomp import AppMessage, Broker, ConnectRequest, StompHandler
from tests.helpers import TIMEOUT, watch
from tests.sockjs_clients import TRANSPORTS, SockJSClient
from tests.stomp.helpers import wire

Client = TestClient[web.Request, web.Application]

#: Set by ``on_open`` to the session's id; hooks report what they see.
opened_by: contextvars.ContextVar[str | None] = contextvars.ContextVar("opened_by", default=None)


@dataclass
class Rig:
    """A real server on loopback whose middleware notes every request's task."""

    client: Client
    request_tasks: weakref.WeakSet[asyncio.Task[Any]]

    @property
    def ping_url(self) -> str:
        return str(self.client.make_url("/ping"))


@pytest.fixture
def rig_for(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> Callable[..., Awaitable[Rig]]:
    async def make(handler: Any, transport: str = "websocket") -> Rig:
        request_tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

        @web.middleware
        async def note_task(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            request_tasks.add(task)
            return await handler(request)

        async def ping(_: web.Request) -> web.Response:
            return web.Response(text="pong")

        app = web.Application(middlewares=[note_task])
        app.router.add_get("/ping", ping)
        options = SockJSOptions(
            allowed_origins=("*",), websocket_compression=transport == "websocket-deflate"
        )
        add_endpoint(app, handler, prefix="/sockjs", options=options)
        return Rig(await aiohttp_client(app), request_tasks)

    return make


@dataclass
class Probe:
    """A handler that reports, for each hook, the task and context it ran in."""

    rig: Rig | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    sessions: set[Session] = field(default_factory=set)
    by_id: dict[str, Session] = field(default_factory=dict)
    tasks: dict[Session, set[asyncio.Task[Any]]] = field(default_factory=dict)
    log: list[tuple[Any, ...]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    running: dict[Session, int] = field(default_factory=dict)

    def note(self, *entry: Any) -> None:
        self.log.append(entry)
        self.changed.set()

    def _enter(self, session: Session, hook: str) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None, f"{hook} ran outside a task"
        assert self.rig is not None
        assert task not in self.rig.request_tasks, f"{hook} ran in a request's task"
        assert self.running.get(session, 0) == 0, "hooks of one session overlapped"
        self.running[session] = 1
        self.tasks.setdefault(session, set()).add(task)
        for other, tasks in self.tasks.items():
            assert other is session or task not in tasks, "two sessions shared a task"
        return task

    def _leave(self, session: Session) -> None:
        self.running[session] = 0

    async def on_open(self, session: Session) -> None:
        self._enter(session, "on_open")
        try:
            opened_by.set(session.id)
            self.sessions.add(session)
            self.note("open", session)
        finally:
            self._leave(session)

    async def on_message(self, session: Session, message: str) -> None:
        self._enter(session, "on_message")
        try:
            await self.handle(session, message)
        finally:
            self._leave(session)

    async def handle(self, session: Session, message: str) -> None:
        if message == "probe":
            async with asyncio.timeout(TIMEOUT):  # needs a real task
                await asyncio.sleep(0)
            assert self.rig is not None
            async with (
                aiohttp.ClientSession() as http,
                http.get(self.rig.ping_url) as response,
            ):
                pong = await response.text()
            session.send(json.dumps({"seen": opened_by.get(), "pong": pong}))
        elif message == "slow":
            self.note("slow-start", session)
            await asyncio.wait_for(self.gate.wait(), TIMEOUT)
            self.note("slow-end", session)
        elif message.startswith("close:"):
            other = self.by_id[message[len("close:") :]]
            other.close(3000, "Go away!")
            self.note("close-returned", other)
        elif message == "close-all":
            session.send("closing all")
            for each in self.sessions:  # on_close removes from the set
                each.close(3001, "All gone")
        elif message.startswith("name:"):
            self.by_id[message[len("name:") :]] = session
            session.send("named")
        else:
            await asyncio.sleep(0)
            self.note("message", session, message)
            session.send(message)

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        self._enter(session, "on_close")
        try:
            self.sessions.discard(session)
            self.note("close", session, code, reason, opened_by.get())
        finally:
            self._leave(session)

    def entries(self, kind: str, session: Session | None = None) -> list[tuple[Any, ...]]:
        return [e for e in self.log if e[0] == kind and (session is None or e[1] is session)]

    async def wait(self, predicate: Callable[[], bool]) -> None:
        await watch(self.changed, predicate)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    param = request.param
    assert isinstance(param, str)
    return param


@pytest.fixture
async def connect(
    transport: str, rig_for: Callable[..., Awaitable[Rig]]
) -> AsyncIterator[Callable[[Any], Awaitable[tuple[Rig, SockJSClient]]]]:
    """``await connect(handler)``: a server for ``handler`` and one open client; more
    clients of the same transport with ``SockJSClient(rig.client, transport)``."""
    clients: list[SockJSClient] = []

    async def open_one(handler: Any) -> tuple[Rig, SockJSClient]:
        rig = await rig_for(handler, transport)
        if isinstance(handler, Probe):
            handler.rig = rig
        client = SockJSClient(rig.client, transport)
        clients.append(client)
        await client.open()
        return rig, client

    yield open_one
    for client in clients:
        await client.stop()


def session_of(probe: Probe, index: int = 0) -> Session:
    return probe.entries("open")[index][1]  # type: ignore[no-any-return]


# -- 1. one execution context per session -----------------------------------------------


async def test_hooks_run_in_their_sessions_task_and_context(
    connect: Callable[[Any], Awaitable[tuple[Rig, SockJSClient]]], transport: str
) -> None:
    probe = Probe()
    rig, first = await connect(probe)
    second = SockJSClient(rig.client, transport)
    await second.open()
    try:
        await probe.wait(lambda: len(probe.entries("open")) == 2)
        reports = []
        for client in (first, second, first):
            await client.send("probe")
            [report] = json.loads((await client.next_frame())[1:])
            reports.append(json.loads(report))
        assert all(report["pong"] == "pong" for report in reports)  # aiohttp client calls work
        # Each session saw the contextvar its own on_open set, and only that one.
        ids = [session.id for session in probe.tasks]
        assert [report["seen"] for report in reports] == [ids[0], ids[1], ids[0]]
    finally:
        await second.stop()


async def test_a_client_going_away_never_cancels_a_running_hook(
    connect: Callable[[Any], Awaitable[tuple[Rig, SockJSClient]]],
) -> None:
    probe = Probe()
    _, client = await connect(probe)
    await client.send("slow")
    await probe.wait(lambda: bool(probe.entries("slow-start")))
    await client.disconnect()
    await asyncio.sleep(0.05)  # let the server see the connection go
    probe.gate.set()
    await probe.wait(lambda: bool(probe.entries("close")))
    kinds = [entry[0] for entry in probe.log]
    assert kinds.index("slow-end") < kinds.index("close")


async def test_hooks_of_a_session_never_overlap_and_keep_their_order(
    connect: Callable[[Any], Awaitable[tuple[Rig, SockJSClient]]],
) -> None:
    probe = Probe()
    _, client = await connect(probe)
    sent = [f"m{i}" for i in range(12)]
    for start in range(0, len(sent), 3):
        assert await client.send(*sent[start : start + 3]) in (101, 200, 204)
    received: list[str] = []
    while len(received) < len(sent):
        received += json.loads((await client.next_frame())[1:])
    assert received == sent
    assert [entry[2] for entry in probe.entries("message")] == sent


# -- 2. any failure closes with 1011 ----------------------------------------------------


class Fails(Probe):
    """``on_message`` fails in the way the test names; ``on_open`` with "open"."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    async def on_open(self, session: Session) -> None:
        await super().on_open(session)
        if self.how == "open":
            raise RuntimeError("on_open bug")

    def on_message(self, session: Session, message: str) -> Any:
        if self.how == "when-called":
            raise RuntimeError("on_message bug before any await")  # a plain def that raises
        return self._fail_inside(session)

    async def _fail_inside(self, session: Session) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("on_message bug after an await")


@pytest.mark.parametrize("how", ["when-called", "inside", "open"])
async def test_a_failing_hook_closes_with_1011_and_on_close_runs_once(
    connect: Callable[[Any], Awaitable[tuple[Rig, SockJSClient]]],
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = Fails(how)
    with caplog.at_level(logging.ERROR, "sockjs_gateway"):
        _, client = await connect(probe)
        if how != "open":
            await client.send("anything")
        messages, close = await client.messages_until_close()
        await probe.wait(lambda: bool(probe.entries("close")))
        await asyncio.sleep(0.05)  # a second on_close would show up now
    assert messages == []
    assert close == [1011, "Internal error"] or (
        client.transport == "raw-websocket" and close[0] == 1011
    )
    session = session_of(probe)
    [closed] = probe.entries("close")
    assert closed[2:4] == (1011, "Internal error")
    failures = [r for r in caplog.records if "failed in session" in r.getMessage()]
    assert len(failures) == 1
    assert repr(session.id) in failures[0].getMessage()


# -- 3. close() only schedules -------------------------------------------------------------


async def test_close_of_another_session_runs_its_on_close_later_in_its_own_task(
    connect: Callable[[Any], Awaitable[tuple[Rig, SockJSClient]]], transport: str
) -> None:
    probe = Probe()
    rig, closer = await connect(probe)
    victim = SockJSClient(rig.client, transport)
    await victim.open()
    try:
        await victim.send("name:victim")
        assert json.loads((await victim.next_frame())[1:]) == ["named"]
        await closer.send("close:victim")
        await probe.wait(lambda: bool(probe.entries("close")))
        kinds = [entry[0] for entry in probe.log]
        assert kinds.index("close-returned") < kinds.index("close")  # not inside close()
        [closed] = probe.entries("close")
        target = probe.by_id["victim"]
        assert closed[1] is target
        assert closed[4] == target.id  # its own context: the contextvar its on_open set
        assert len(probe.tasks[target]) >= 1
        _, close = await victim.messages_until_close()
        assert close[0] == 3000
    finally:
        await victim.stop()


async def test_closing_every_session_while_iterating_over_them(
    connect: Callable[[Any], Awaitable[tuple[Rig, SockJSClient]]], transport: str
) -> None:
    probe = Probe()
    rig, first = await connect(probe)
    others = [SockJSClient(rig.client, transport) for _ in range(3)]
    for other in others:
        await other.open()
    try:
        await probe.wait(lambda: len(probe.entries("open")) == 4)
        await first.send("close-all")
        messages, close = await first.messages_until_close()
        assert messages == ["closing all"]
        assert close[0] == 3001
        await probe.wait(lambda: len(probe.entries("close")) == 4)
        assert not probe.sessions
    finally:
        for other in others:
            await other.stop()


# -- STOMP: /app mappings and broker hooks are hooks too -----------------------------------

user_of: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_of", default=None)


def stomp_broker(rigs: list[Rig]) -> Broker:
    """A broker whose hooks check their task: ``rigs`` holds the server once it runs."""

    def check_task() -> None:
        task = asyncio.current_task()
        assert task is not None
        assert task not in rigs[0].request_tasks

    async def authenticate(connect: ConnectRequest, info: Any) -> str:
        check_task()
        login = connect.login or "anonymous"
        user_of.set(login)  # seen by this connection's later hooks only
        return login

    broker = Broker(authenticate=authenticate)

    @broker.message_mapping("/probe")
    async def probe(message: AppMessage) -> None:
        check_task()
        async with asyncio.timeout(TIMEOUT):
            await asyncio.sleep(0)
        message.reply(json.dumps({"user": message.user, "seen": user_of.get()}))

    return broker


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"], indirect=True)
async def test_stomp_hooks_run_in_their_sessions_task_and_context(
    rig_for: Callable[..., Awaitable[Rig]], transport: str
) -> None:
    rigs: list[Rig] = []
    handler = StompHandler(stomp_broker(rigs))
    rig = await rig_for(handler, transport)
    rigs.append(rig)
    clients = []
    try:
        for login in ("alice", "bob"):
            client = SockJSClient(rig.client, transport)
            clients.append(client)
            await client.open()
            await client.send(wire("CONNECT", {"accept-version": "1.2", "login": login}))
            assert "CONNECTED" in json.loads((await client.next_frame())[1:])[0]
            await client.send(wire("SUBSCRIBE", {"id": "1", "destination": "/user/queue/probe"}))
            await client.send(wire("SEND", {"destination": "/app/probe"}, "?"))
            frame = json.loads((await client.next_frame())[1:])[0]
            assert frame.startswith("MESSAGE")
            body = json.loads(frame.split("\n\n", 1)[1].rstrip("\x00"))
            assert body == {"user": login, "seen": login}
    finally:
        for client in clients:
            await client.stop()
