"""An application factory for ``python -m sockjs_gateway serve --app tests.cli_app:make_app``
(used by tests/test_cli.py)."""

from __future__ import annotations

from aiohttp import web

from sockjs_gateway import SockJSOptions, add_endpoint
from sockjs_gateway.testserver import EchoHandler


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello from cli_app")


def make_app() -> web.Application:
    """An echo endpoint at ``/custom`` and a plain page at ``/hello``."""
    app = web.Application()
    app.router.add_get("/hello", _hello)
    add_endpoint(app, EchoHandler(), prefix="/custom", options=SockJSOptions(cookie_needed=True))
    return app
