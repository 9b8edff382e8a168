"""The app the STOMP memory tests run with ``python -m sockjs_gateway serve --app``: a
broker on ``/stomp`` (raw WebSocket route used) with tracemalloc on, and ``/stats`` saying
what the broker holds and how many bytes Python has allocated.

tracemalloc, not RSS: freed memory returns to Python's allocator at once, but the C
allocator may keep the pages, so RSS cannot show that the broker let go."""

from __future__ import annotations

import gc
import tracemalloc

from aiohttp import web

from sockjs_gateway import add_endpoint
from sockjs_gateway.stomp import Broker, StompHandler, StompOptions

#: Enough subscriptions on one connection to make 10k empty queues.
MAX_SUBSCRIPTIONS = 20_000


def make_app() -> web.Application:
    tracemalloc.start()
    options = StompOptions(
        max_subscriptions=MAX_SUBSCRIPTIONS, heartbeat_send_ms=0, heartbeat_receive_ms=0
    )
    broker = Broker(options)
    app = web.Application()
    add_endpoint(app, StompHandler(broker), prefix="/stomp")

    async def stats(request: web.Request) -> web.Response:
        gc.collect()
        return web.json_response(
            {
                "traced": tracemalloc.get_traced_memory()[0],
                "queued_bytes": broker.queued_bytes,
                "destinations": broker.destinations,
                "clients": broker.clients,
            }
        )

    app.router.add_get("/stats", stats)
    return app
