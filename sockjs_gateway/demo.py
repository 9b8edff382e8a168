"""The demo served by ``python -m sockjs_gateway serve``: a chat room on ``/chat``.

The page (``static/index.html``) and sockjs-client come from this server, never a CDN:
sockjs-client is read from the npm package that ``make install`` puts in
``node_modules/`` (or from the file named by ``SOCKJS_CLIENT_JS``).
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from .options import SockJSOptions
from .server.endpoint import add_endpoint
from .server.session import Session

__all__ = ["ChatHandler", "make_app", "STATIC_DIR", "sockjs_client_path"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_CLIENT_URL = "/static/sockjs.min.js"


def sockjs_client_path() -> Path | None:
    """Where the sockjs-client bundle is on this machine, if anywhere."""
    explicit = os.environ.get("SOCKJS_CLIENT_JS")
    candidates = [Path(explicit)] if explicit else []
    for base in (Path.cwd(), STATIC_DIR.parent):
        candidates.append(base / "node_modules" / "sockjs-client" / "dist" / "sockjs.min.js")
    return next((path for path in candidates if path.is_file()), None)


class ChatHandler:
    """Every message goes to everyone in the room."""

    async def on_open(self, session: Session) -> None:
        session.endpoint.broadcast(f"* someone joined via {session.info.transport}")

    async def on_message(self, session: Session, message: str) -> None:
        session.endpoint.broadcast(message)

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        session.endpoint.broadcast("* someone left")


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def _client(request: web.Request) -> web.StreamResponse:
    path = sockjs_client_path()
    if path is None:
        return web.Response(status=404, text="sockjs-client is not installed: run make install")
    return web.FileResponse(path, headers={"Content-Type": "application/javascript"})


def make_app() -> web.Application:
    """The demo application."""
    app = web.Application()
    app.router.add_get("/", _index)
    app.router.add_get(_CLIENT_URL, _client)
    add_endpoint(app, ChatHandler(), prefix="/chat", options=SockJSOptions(sockjs_url=_CLIENT_URL))
    return app
