"""The browser's own EventSource in Chromium, against ``add_event_stream``: the server is
stopped mid-stream and started again on the same port (the channel history kept in the
process, across an aiohttp runner restart), messages are published while it is down, and
the page, which reconnects by itself with ``Last-Event-ID``, gets every message once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from sockjs_gateway import SockJSOptions, add_event_stream
from sockjs_gateway.history import Channels, HistoryLimits
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


def make_app(hub: Channels) -> web.Application:
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


async def received(page: Any, count: int) -> list[list[str]]:
    await page.wait_for_function(f"window.got.length >= {count}", timeout=TIMEOUT_MS)
    got: list[list[str]] = await page.evaluate("window.got")
    return got


async def test_eventsource_resumes_after_a_server_restart_with_every_message_once(
    page: Any,
) -> None:
    hub = Channels(HistoryLimits())
    runner, url = await start(make_app(hub))
    port = int(url.rsplit(":", 1)[1])
    try:
        await page.goto(url + "/page.html")
        await page.wait_for_function("window.recoveries.length >= 1", timeout=TIMEOUT_MS)
        for number in range(1, 11):
            hub.publish("news", str(number))
        await received(page, 10)
        await runner.cleanup()  # mid-stream: the page's response ends, it retries
        for number in range(11, 21):  # while nobody serves
            hub.publish("news", str(number))
        await page.wait_for_function("window.errors >= 1", timeout=TIMEOUT_MS)
        runner, _ = await start(make_app(hub), port)
        for number in range(21, 31):
            hub.publish("news", str(number))
            await asyncio.sleep(0.01)
        await received(page, 30)
        hub.publish("news", "31")  # a duplicate of 1..30 would come before this one
        await page.wait_for_function("window.got.some(([, d]) => d === '31')", timeout=TIMEOUT_MS)
        got = await page.evaluate("window.got")
        recoveries = await page.evaluate("window.recoveries")
    finally:
        await runner.cleanup()
    assert [data for _, data in got] == [str(n) for n in range(1, 32)]
    epoch = hub.store.epoch("news")
    assert [event_id for event_id, _ in got] == [f"{epoch}-{n}" for n in range(1, 32)]
    assert len(recoveries) >= 2
    assert all(r["recovered"] for r in recoveries)
