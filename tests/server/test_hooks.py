"""The order of handler hooks when messages arrive in batches: hooks of a session never
overlap, a waiting hook holds back the messages after it, a failing one drops the rest
of its batch, and a close raised inside a hook runs ``on_close`` only after that hook."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from sockjs_gateway import Session
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT

Client = TestClient[web.Request, web.Application]


@dataclass
class OrderHandler(RecordingHandler):
    """Records when each hook starts and ends. Message "wait..." waits for ``gate``;
    "boom..." raises (after waiting, for "wait-boom"); "close" closes its session."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0

    async def on_message(self, session: Session, message: str) -> None:
        assert self.running == 0, "hooks of one session overlapped"
        self.running += 1
        try:
            self._record("start", session, message)
            if message.startswith("wait"):
                await asyncio.wait_for(self.gate.wait(), TIMEOUT)
            if "boom" in message:
                raise RuntimeError("hook bug")
            if message == "close":
                session.close(3000, "Go away!")
            self._record("end", session, message)
        finally:
            self.running -= 1

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        assert self.running == 0, "on_close ran inside another hook"
        await super().on_close(session, code, reason)


async def opened(make_endpoint: MakeEndpoint, handler: Any) -> Client:
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        response = await client.post("/sockjs/000/s1/xhr")
        assert await response.text() == "o\n"
    return client


async def send(client: Client, *messages: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        response = await client.post("/sockjs/000/s1/xhr_send", data=json.dumps(messages))
        assert response.status == 204


def trace(handler: RecordingHandler) -> list[tuple[Any, ...]]:
    return [(event[0], *event[2:]) for event in handler.events if event[0] != "open"]


async def test_a_waiting_hook_holds_back_the_rest_of_its_batch(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = OrderHandler()
    client = await opened(make_endpoint, handler)
    await send(client, "a", "wait", "c")
    await send(client, "d")
    await handler.wait_until(lambda: ("start", "wait") in trace(handler))
    assert trace(handler) == [("start", "a"), ("end", "a"), ("start", "wait")]
    handler.gate.set()
    await handler.wait_until(lambda: ("end", "d") in trace(handler))
    assert [step for step in trace(handler) if step[0] == "end"] == [
        ("end", "a"),
        ("end", "wait"),
        ("end", "c"),
        ("end", "d"),
    ]


async def test_a_failing_hook_drops_the_rest_of_its_batch(make_endpoint: MakeEndpoint) -> None:
    handler = OrderHandler()
    client = await opened(make_endpoint, handler)
    await send(client, "a", "boom", "c")
    await handler.wait_for("close")
    assert trace(handler) == [
        ("start", "a"),
        ("end", "a"),
        ("start", "boom"),
        ("close", 1011, "Internal error"),
    ]


async def test_a_hook_that_fails_after_waiting_drops_the_rest_too(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = OrderHandler()
    client = await opened(make_endpoint, handler)
    await send(client, "wait-boom", "c")
    handler.gate.set()
    await handler.wait_for("close")
    assert trace(handler) == [("start", "wait-boom"), ("close", 1011, "Internal error")]


async def test_on_close_of_a_close_inside_a_hook_runs_after_that_hook(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = OrderHandler()
    client = await opened(make_endpoint, handler)
    await send(client, "close", "b")
    await handler.wait_for("close")
    steps = trace(handler)
    assert steps[:2] == [("start", "close"), ("end", "close")]
    assert steps[-1] == ("close", 3000, "Go away!")


@dataclass
class FutureHandler(RecordingHandler):
    """``on_message`` returns a plain future, resolved a little later."""

    def on_message(self, session: Session, message: str) -> Any:
        future = asyncio.get_running_loop().create_future()

        def done() -> None:
            self._record("message", session, message)
            future.set_result(None)

        asyncio.get_running_loop().call_later(0.01, done)
        return future


async def test_a_hook_may_return_any_awaitable(make_endpoint: MakeEndpoint) -> None:
    handler = FutureHandler()
    client = await opened(make_endpoint, handler)
    await send(client, "x", "y")
    await send(client, "z")
    await handler.wait_for("message", 3)
    assert [event[2] for event in handler.of_kind("message")] == ["x", "y", "z"]
