"""History counters on the Prometheus route: what a bound dropped, and what is held."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sockjs_gateway import add_endpoint, add_event_stream, add_metrics_route
from sockjs_gateway.history import Channels, HistoryLimits
from sockjs_gateway.metrics import watch_history
from tests.conftest import RecordingHandler
from tests.test_metrics import scrape, value


async def test_dropped_history_is_counted_by_bound(aiohttp_client: Any) -> None:
    app = web.Application()
    hub = Channels(HistoryLimits(max_messages=2, max_channels=1))
    watch_history(app, "news", hub)
    add_metrics_route(app)
    for text in ("a", "bb", "ccc"):
        hub.publish("one", text)
    hub.publish("two", "dddd")  # evicts channel "one" and its two messages
    samples = await scrape(await aiohttp_client(app))
    assert value(samples, "sockjs_history_appended_total", history="news") == 4
    assert value(samples, "sockjs_history_dropped_total", history="news", reason="count") == 1
    assert value(samples, "sockjs_history_dropped_total", history="news", reason="channels") == 2
    assert value(samples, "sockjs_history_channels", history="news") == 1
    assert value(samples, "sockjs_history_messages", history="news") == 1
    assert value(samples, "sockjs_history_bytes", history="news") == 4


async def test_the_hubs_of_endpoints_and_event_streams_are_read(aiohttp_client: Any) -> None:
    app = web.Application()
    hub = Channels(HistoryLimits())
    endpoint = add_endpoint(app, RecordingHandler(), prefix="/chat", channels=hub)
    add_event_stream(app, channels=Channels(HistoryLimits(max_messages=1)), prefix="/events")
    add_metrics_route(app)
    endpoint.publish("room", "hello")
    samples = await scrape(await aiohttp_client(app))
    assert value(samples, "sockjs_history_appended_total", history="channels:/chat") == 1
    assert value(samples, "sockjs_history_channels", history="events:/events") == 0
    assert ("sockjs_history_channels", frozenset({("history", "events:/events")})) in samples
