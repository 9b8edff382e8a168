"""The demo served by ``python -m sockjs_gateway serve``: a chat room on ``/chat``, and a
STOMP playground (``/stomp.html``, @stomp/stompjs over SockJS) on ``/stomp``.

The pages ship inside the package (``sockjs_gateway/static/``, package data), so an
installed wheel serves them from any directory. sockjs-client and @stomp/stompjs are not
ours to ship, and the demo must work offline, so never from a CDN: they come from the npm
packages ``make install`` puts in ``node_modules/`` (of the checkout, or of the directory
the server runs in), or from the files named by ``SOCKJS_CLIENT_JS`` and ``STOMPJS_JS``.
Where none exists the script URL answers 404 with the command that installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from .options import SockJSOptions
from .server.endpoint import add_endpoint
from .server.session import Session
from .stomp import StompHandler

__all__ = ["ChatHandler", "make_app", "STATIC_DIR", "sockjs_client_path", "stompjs_path"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The source checkout, when running from one (an editable install); its node_modules/.
_CHECKOUT = STATIC_DIR.parent.parent
_CLIENT_URL = "/static/sockjs.min.js"
_STOMPJS_URL = "/static/stomp.umd.min.js"
# What to run where a library is missing (the versions package.json pins).
_INSTALL = {
    _CLIENT_URL: "npm install sockjs-client@1.6.1 (or set SOCKJS_CLIENT_JS)",
    _STOMPJS_URL: "npm install @stomp/stompjs@7.5.0 (or set STOMPJS_JS)",
}


def _npm_file(env: str, *parts: str) -> Path | None:
    explicit = os.environ.get(env)
    candidates = [Path(explicit)] if explicit else []
    for base in (Path.cwd(), _CHECKOUT):
        candidates.append(base.joinpath("node_modules", *parts))
    return next((path for path in candidates if path.is_file()), None)


def sockjs_client_path() -> Path | None:
    """Where the sockjs-client bundle is on this machine, if anywhere."""
    return _npm_file("SOCKJS_CLIENT_JS", "sockjs-client", "dist", "sockjs.min.js")


def stompjs_path() -> Path | None:
    """Where the @stomp/stompjs UMD bundle is on this machine, if anywhere."""
    return _npm_file("STOMPJS_JS", "@stomp", "stompjs", "bundles", "stomp.umd.min.js")


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


async def _stomp_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "stomp.html")


async def _shared(request: web.Request) -> web.StreamResponse:
    """What both pages share: ``demo.css`` and ``demo.js``."""
    name = request.match_info["name"]
    kind = "text/css" if name.endswith(".css") else "application/javascript"
    return web.FileResponse(STATIC_DIR / name, headers={"Content-Type": kind})


async def _client(request: web.Request) -> web.StreamResponse:
    path = sockjs_client_path() if request.path == _CLIENT_URL else stompjs_path()
    if path is None:
        message = f"// not installed here: run {_INSTALL[request.path]}\n"
        return web.Response(status=404, text=message, content_type="application/javascript")
    return web.FileResponse(path, headers={"Content-Type": "application/javascript"})


def make_app() -> web.Application:
    """The demo application."""
    app = web.Application()
    app.router.add_get("/", _index)
    app.router.add_get("/stomp.html", _stomp_page)
    app.router.add_get(_CLIENT_URL, _client)
    app.router.add_get(_STOMPJS_URL, _client)
    app.router.add_get("/static/{name:demo\\.(?:css|js)}", _shared)
    options = SockJSOptions(sockjs_url=_CLIENT_URL)
    add_endpoint(app, ChatHandler(), prefix="/chat", options=options)
    add_endpoint(app, StompHandler(), prefix="/stomp", options=options)
    return app
