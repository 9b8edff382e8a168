"""A chat app whose ``on_close`` broadcasts (as the quickstart's chat does), for the
shutdown tests: ``python -m sockjs_gateway serve --app tests/clients/shutdown_app.py:make_app``
(a file path, as a user may pass it). Serves the probe page and sockjs-client too."""

from __future__ import annotations

from aiohttp import web

from sockjs_gateway import Session, SockJSOptions, add_endpoint
from tests.clients.app import CLIENT_URL, add_page_routes
from tests.clients.conftest import CLIENT_JS


class Chat:
    """Every message to everyone; everyone hears who left."""

    async def on_open(self, session: Session) -> None:
        session.endpoint.broadcast(f"{session.id} joined")

    async def on_message(self, session: Session, message: str) -> None:
        session.endpoint.broadcast(message)

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        session.endpoint.broadcast(f"{session.id} left")


def make_app() -> web.Application:
    """``/chat`` (default options, so the default ``shutdown_grace``) and the probe page."""
    options = SockJSOptions(sockjs_url=CLIENT_URL)
    app = web.Application()
    add_endpoint(app, Chat(), prefix="/chat", options=options)
    add_page_routes(app, CLIENT_JS)
    return app
