"""The browser's own EventSource in Chromium, against ``add_event_stream``: the server is
stopped mid-stream and started again on the same port, messages are published while it
is down, and the page, which reconnects by itself with ``Last-Event-ID``, gets every
message once.

Two ways to keep the history across the restart: in the process (one node: the same
in-memory hub serves the restarted aiohttp runner), or in Redis (two nodes: the restarted
server has a new ``RedisChannels`` that knows only what Redis kept, and the messages
published meanwhile come from another node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from sockjs_gateway import SockJSOptions, add_event_stream
from sockjs_gateway.history import ChannelHub, Channels, HistoryLimits
from tests.clients.conftest import start

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT_MS = 15000
PAGE = """<!doctype html><meta charset="utf-8"><title>events</title><script>
window.got = []; window.recoveries = []; window.errors = 0;
const source = new EventSource("/events/news?since=first");
source.onmessage = (e) => window.got.push([e.lastEventId, e.data]);
source.addEventListener("recovery", (e) => window.recoveries.push(JSON.parse(e.data)));
source.onerror = () => { window.errors += 1; };
</script>"""


def make_app(hub: ChannelHub) -> web.Application:
    app = web.Application()
    add_event_stream(
        app,
        channels=hub,
        prefix="/events",
        options=SockJSOptions(heartbeat_delay=1.0),
        retry_ms=100,
    )

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/page.html", page)
    return app


class Nodes:
    """Hands out the hub of each server start, and the hub that publishes."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self.memory = Channels(HistoryLimits())
        self.started: list[Any] = []

    async def hub(self) -> ChannelHub:
        if self.redis_url is None:
            return self.memory
        from sockjs_gateway.backplane.history import RedisChannels

        hub = RedisChannels(self.redis_url, timeout=2.0, retry_delay=0.05)
        await hub.start()
        self.started.append(hub)
        return hub

    async def close(self) -> None:
        for hub in self.started:
            await hub.close()


@pytest_asyncio.fixture(loop_scope="module", params=["one node, in memory", "two nodes, Redis"])
async def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Nodes]:
    from tests.backplane.servers import RedisServer

    wanted = request.param == "two nodes, Redis"
    with RedisServer.running(tmp_path) if wanted else nullcontext() as redis:
        made = Nodes(redis.url if redis is not None else None)
        try:
            yield made
        finally:
            await made.close()


async def received(page: Any, count: int) -> None:
    await page.wait_for_function(f"window.got.length >= {count}", timeout=TIMEOUT_MS)


async def test_eventsource_resumes_after_a_server_restart_with_every_message_once(
    page: Any, nodes: Nodes
) -> None:
    publisher = await nodes.hub()  # in memory: the same hub as the server's
    runner, url = await start(make_app(await nodes.hub()))
    port = int(url.rsplit(":", 1)[1])
    try:
        await page.goto(url + "/page.html")
        await page.wait_for_function("window.recoveries.length >= 1", timeout=TIMEOUT_MS)
        for number in range(1, 11):
            publisher.publish("news", str(number))
        await received(page, 10)
        await runner.cleanup()  # mid-stream: the page's response ends, it retries
        for number in range(11, 21):  # while nobody serves the page
            publisher.publish("news", str(number))
        await page.wait_for_function("window.errors >= 1", timeout=TIMEOUT_MS)
        runner, _ = await start(make_app(await nodes.hub()), port)
        for number in range(21, 31):
            publisher.publish("news", str(number))
        await received(page, 30)
        publisher.publish("news", "31")  # a duplicate of 1..30 would come before this one
        await page.wait_for_function("window.got.some(([, d]) => d === '31')", timeout=TIMEOUT_MS)
        got = await page.evaluate("window.got")
        recoveries = await page.evaluate("window.recoveries")
    finally:
        await runner.cleanup()
    assert [data for _, data in got] == [str(n) for n in range(1, 32)]
    epoch = got[0][0].split("-")[0]
    assert [event_id for event_id, _ in got] == [f"{epoch}-{n}" for n in range(1, 32)]
    assert len(recoveries) >= 2
    assert all(r["recovered"] for r in recoveries)
