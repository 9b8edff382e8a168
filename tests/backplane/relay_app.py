"""The application of the relay tests: short delays, and a record of every close, so a
test can see on which node a session's ``on_close`` ran and with what code.

Served in-process (:func:`make_app` with a backplane) or by ``python -m sockjs_gateway
serve --app tests.backplane.relay_app:make_app --redis URL``.
"""

from __future__ import annotations

import os

from aiohttp import web

from sockjs_gateway import SockJSOptions, add_endpoint
from sockjs_gateway.backplane import Backplane
from sockjs_gateway.server.session import Session
from sockjs_gateway.testserver import CloseHandler, EchoHandler

__all__ = ["make_app", "CLOSES", "OPTIONS"]

#: Every session closed on this node: (endpoint prefix, session id) -> (code, reason).
CLOSES = web.AppKey("relay_app.closes", dict[str, list[object]])

#: Short delays, so that expiry and leases happen within a test.
OPTIONS = SockJSOptions(
    allowed_origins=("*",),
    disconnect_delay=float(os.environ.get("RELAY_DISCONNECT_DELAY", "1.0")),
    response_limit=4096,
    relay_timeout=float(os.environ.get("RELAY_TIMEOUT", "1.5")),
)


class Recorder(EchoHandler):
    """Echoes, and records each close of its endpoint in the app."""

    def __init__(self, closes: dict[str, list[object]]) -> None:
        self.closes = closes

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        self.closes[session.id] = [code, reason]


def make_app(
    backplane: Backplane | None = None, options: SockJSOptions = OPTIONS
) -> web.Application:
    """``/echo`` (records closes), ``/hb`` (0.3 s heartbeats), ``/close`` (closes at
    once), and ``GET /closes``: the record, as JSON. ``options`` for ``/echo``."""
    app = web.Application()
    closes: dict[str, list[object]] = {}
    app[CLOSES] = closes

    async def report(request: web.Request) -> web.Response:
        return web.json_response(closes)

    app.router.add_get("/closes", report)
    add_endpoint(app, Recorder(closes), prefix="/echo", options=options, backplane=backplane)
    add_endpoint(
        app,
        EchoHandler(),
        prefix="/hb",
        options=SockJSOptions(
            allowed_origins=("*",), heartbeat_delay=0.3, disconnect_delay=1.0, relay_timeout=1.5
        ),
        backplane=backplane,
    )
    add_endpoint(app, CloseHandler(), prefix="/close", options=OPTIONS, backplane=backplane)
    return app
