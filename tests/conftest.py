"""Shared fixtures: real aiohttp servers on 127.0.0.1 (ephemeral ports) and a handler
that records what it hears."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sockjs_gateway import Endpoint, Session, SockJSOptions, add_endpoint
from tests.helpers import watch


@dataclass
class RecordingHandler:
    """Echoes every message and records every hook call as a tuple.

    ``("open", session)``, ``("message", session, text)``, ``("close", session, code,
    reason)``; :meth:`wait_for` waits until a matching record exists.
    """

    echo: bool = True
    events: list[tuple[Any, ...]] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _record(self, *event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    async def on_open(self, session: Session) -> None:
        self.sessions.append(session)
        self._record("open", session)

    async def on_message(self, session: Session, message: str) -> None:
        self._record("message", session, message)
        if self.echo:
            session.send(message)

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        self._record("close", session, code, reason)

    def of_kind(self, kind: str) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] == kind]

    async def wait_for(
        self, kind: str, count: int = 1, timeout: float = 5.0
    ) -> list[tuple[Any, ...]]:
        """Wait until at least ``count`` events of ``kind`` were recorded; return them."""

        await watch(self._changed, lambda: len(self.of_kind(kind)) >= count, timeout)
        return self.of_kind(kind)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checking after every recorded event."""

        await watch(self._changed, predicate, timeout)


def library_tasks() -> list[asyncio.Task[Any]]:
    """Pending tasks running sockjs_gateway code."""
    found = []
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        if isinstance(coro, types.CoroutineType) and "sockjs_gateway" in coro.cr_code.co_filename:
            found.append(task)
    return found


MakeEndpoint = Callable[..., Awaitable[tuple[TestClient[web.Request, web.Application], Endpoint]]]


@pytest.fixture
def make_endpoint(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> MakeEndpoint:
    """Start a real server with one endpoint at ``/sockjs``; returns (client, endpoint).

    Keyword arguments other than ``handler`` and ``prefix`` are ``SockJSOptions`` fields.
    """

    async def make(
        handler: Any = None, prefix: str = "/sockjs", **options: Any
    ) -> tuple[TestClient[web.Request, web.Application], Endpoint]:
        # Transport tests call from any origin; the origin policy has tests of its own.
        options.setdefault("allowed_origins", ("*",))
        app = web.Application()
        endpoint = add_endpoint(
            app,
            handler if handler is not None else RecordingHandler(),
            prefix=prefix,
            options=SockJSOptions(**options),
        )
        client = await aiohttp_client(app)
        return client, endpoint

    return make
