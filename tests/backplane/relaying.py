"""Helpers of the relay tests: in-process nodes on real aiohttp servers, and a raw SockJS
HTTP client that sends each request of one session wherever the test says."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from sockjs_gateway import SockJSOptions, drain
from sockjs_gateway.backplane import Backplane, MemoryBackplane, MemoryHub
from tests.backplane.relay_app import OPTIONS, make_app
from tests.backplane.servers import Node, RedisServer

__all__ = [
    "LocalNodes",
    "memory_nodes",
    "redis_nodes",
    "new_id",
    "opened",
    "poll",
    "held",
    "send",
    "closes",
    "close_of",
    "start_node",
    "wait_for",
]


def new_id() -> str:
    return uuid.uuid4().hex[:12]


class LocalNodes:
    """One aiohttp server on 127.0.0.1 (port 0) per backplane, serving the relay app."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []
        self.urls: list[str] = []
        self.apps: list[web.Application] = []
        self._stopped: list[web.AppRunner] = []

    async def add(self, backplane: Backplane, options: SockJSOptions = OPTIONS) -> str:
        app = make_app(backplane, options)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.runners.append(runner)
        self.apps.append(app)
        url = f"http://127.0.0.1:{port}"
        self.urls.append(url)
        return url

    async def stop(self, index: int) -> None:
        """Shut node ``index`` down as ``python -m sockjs_gateway serve`` does: drain its
        endpoints, then clean its runner up."""
        runner = self.runners[index]
        if runner in self._stopped:
            return
        self._stopped.append(runner)
        await drain(self.apps[index])
        await runner.cleanup()

    async def close(self) -> None:
        for runner in self.runners:
            if runner not in self._stopped:
                await runner.cleanup()


#: The method and query of each receiving transport's request.
_REQUESTS = {
    "xhr": ("POST", ""),
    "jsonp": ("GET", "?c=cb"),
    "xhr_streaming": ("POST", ""),
    "eventsource": ("GET", ""),
    "htmlfile": ("GET", "?c=cb"),
}


async def poll(
    http: aiohttp.ClientSession,
    base: str,
    sid: str,
    *,
    prefix: str = "/echo",
    transport: str = "xhr",
) -> str:
    """One receiving request, polling or streaming (until the server ends it); its body."""
    method, query = _REQUESTS[transport]
    async with http.request(method, f"{base}{prefix}/000/{sid}/{transport}{query}") as response:
        assert response.status == 200, (response.status, await response.text())
        return await response.text()


async def held(
    http: aiohttp.ClientSession,
    base: str,
    sid: str,
    *,
    transport: str = "xhr",
    settle: float = 0.1,
) -> asyncio.Future[str]:
    """A :func:`poll` left running, given ``settle`` seconds to reach the server and be
    held there (no event says it has); await it for its body."""
    request = asyncio.ensure_future(poll(http, base, sid, transport=transport))
    await asyncio.sleep(settle)
    return request


async def opened(http: aiohttp.ClientSession, base: str, *, prefix: str = "/echo") -> str:
    """The id of a new session, opened (and so owned) by ``base``."""
    sid = new_id()
    assert await poll(http, base, sid, prefix=prefix) == "o\n"
    return sid


async def send(
    http: aiohttp.ClientSession,
    base: str,
    sid: str,
    messages: Sequence[str],
    *,
    prefix: str = "/echo",
) -> tuple[int, str]:
    """One ``xhr_send``; its status and body."""
    url = f"{base}{prefix}/000/{sid}/xhr_send"
    async with http.post(url, data=json.dumps(list(messages))) as response:
        return response.status, await response.text()


async def closes(http: aiohttp.ClientSession, base: str) -> dict[str, list[object]]:
    """The closes recorded on one node."""
    async with http.get(f"{base}/closes") as response:
        result: dict[str, list[object]] = await response.json()
        return result


async def close_of(http: aiohttp.ClientSession, base: str, sid: str) -> list[object]:
    """The close that ``base`` (the session's owner) recorded for ``sid``, once it has."""

    async def recorded() -> bool:
        return sid in await closes(http, base)

    await wait_for(recorded)
    return (await closes(http, base))[sid]


async def start_node(redis_url: str, log: Path, **env: str) -> Node:
    """``python -m sockjs_gateway serve --app tests.backplane.relay_app:make_app --redis
    URL`` on a free port, its stderr in ``log``; ``env`` adds environment variables."""
    args = ("serve", "--port", "0", "--redis", redis_url)
    app = ("--app", "tests.backplane.relay_app:make_app", "--no-access-log")
    return await Node.launch((*args, *app), log, env)


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Until ``check()`` is true: every 50 ms, for at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 (another process's state: no event)
            await asyncio.sleep(0.05)


@asynccontextmanager
async def memory_nodes(
    options: SockJSOptions = OPTIONS, count: int = 2
) -> AsyncIterator[LocalNodes]:
    """``count`` in-process nodes sharing one :class:`MemoryHub`, closed on the way out."""
    nodes = LocalNodes()
    hub = MemoryHub()
    try:
        for _ in range(count):
            await nodes.add(MemoryBackplane(hub), options)
        yield nodes
    finally:
        await nodes.close()


@asynccontextmanager
async def redis_nodes(workdir: Path, count: int) -> AsyncIterator[tuple[RedisServer, list[Node]]]:
    """A redis-server and ``count`` ``serve --redis`` processes on it (logs in ``workdir``),
    all killed on the way out."""
    started: list[Node] = []
    with RedisServer.running(workdir) as redis:
        try:
            for index in range(count):
                started.append(await start_node(redis.url, workdir / f"node{index}.log"))
            yield redis, started
        finally:
            for node in started:
                await node.kill()
