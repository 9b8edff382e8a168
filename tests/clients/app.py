"""The server the real-client tests talk to: the testserver endpoints, plus a recording
endpoint and one that closes on command, plus the probe page and sockjs-client itself."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from sockjs_gateway import Session, SockJSOptions, add_endpoint
from sockjs_gateway.testserver import make_app
from tests.conftest import RecordingHandler

PROBE_PAGE = Path(__file__).with_name("probe.html")
CLIENT_URL = "/static/sockjs.min.js"


class CommandHandler:
    """Echoes, but ``close CODE REASON`` makes the server close the session."""

    async def on_open(self, session: Session) -> None:
        return None

    async def on_message(self, session: Session, message: str) -> None:
        if message.startswith("close "):
            _, code, reason = message.split(" ", 2)
            session.close(int(code), reason)
        else:
            session.send(message)

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        return None


def add_page_routes(app: web.Application, client_js: Path) -> None:
    """Serve the probe page and sockjs-client from ``app``."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PROBE_PAGE)

    async def client(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(client_js, headers={"Content-Type": "application/javascript"})

    app.router.add_get("/probe.html", page)
    app.router.add_get(CLIENT_URL, client)


def make_client_app(
    client_js: Path, recorder: RecordingHandler, *, response_limit: int = 4096, **options: object
) -> web.Application:
    """The SockJS server for the client tests (``options`` are ``SockJSOptions`` fields)."""
    base = SockJSOptions(sockjs_url=CLIENT_URL, allowed_origins=("*",), **options)  # type: ignore[arg-type]
    app = make_app(response_limit=response_limit, options=base)
    add_endpoint(app, recorder, prefix="/record", options=base)
    add_endpoint(app, CommandHandler(), prefix="/command", options=base)
    add_page_routes(app, client_js)
    return app


def make_page_app(client_js: Path) -> web.Application:
    """A second origin that only serves the probe page and sockjs-client."""
    app = web.Application()
    add_page_routes(app, client_js)
    return app
