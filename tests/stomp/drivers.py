"""The STOMP test server, and two drivers of the same probe (``stomp_probe.js``): one in
Node, one in a Chromium page. Tests talk to either through :class:`StompDriver`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from sockjs_gateway import SockJSOptions, add_endpoint
from sockjs_gateway.stomp import StompHandler, StompOptions
from sockjs_gateway.testserver import make_app, make_stomp_broker
from tests.clients.app import CLIENT_URL, add_page_routes
from tests.clients.conftest import CLIENT_JS, NODE_MODULES, require
from tests.clients.node import NodeClients
from tests.helpers import watch

HERE = Path(__file__).resolve().parent
PROBE_JS = HERE / "stomp_probe.js"
PROBE_PAGE = HERE / "stomp_probe.html"
STOMPJS = NODE_MODULES / "@stomp" / "stompjs" / "bundles" / "stomp.umd.min.js"
#: Heart-beats of the ``/stomp-hb`` endpoint, both ways, in ms (tolerance x3).
FAST_HEARTBEAT_MS = 400
TIMEOUT = 15.0


def require_clients() -> None:
    require(CLIENT_JS.is_file(), "sockjs-client (npm)")
    require(STOMPJS.is_file(), "@stomp/stompjs (npm)")


def make_server_app() -> web.Application:
    """The testserver (``/stomp`` as mounted there) plus ``/stomp-hb`` with fast
    heart-beats, the probe page and script, and both client bundles."""
    base = SockJSOptions(sockjs_url=CLIENT_URL, disconnect_delay=1.0)
    app = make_app(options=base)
    fast = StompOptions(heartbeat_send_ms=FAST_HEARTBEAT_MS, heartbeat_receive_ms=FAST_HEARTBEAT_MS)
    add_endpoint(app, StompHandler(make_stomp_broker(fast)), prefix="/stomp-hb", options=base)
    add_probe_routes(app)
    return app


def add_probe_routes(app: web.Application) -> None:
    """The probe pages (sockjs-client and STOMP), their script and both client bundles."""
    add_page_routes(app, CLIENT_JS)
    files = {
        "/stomp_probe.html": PROBE_PAGE,
        "/stomp_probe.js": PROBE_JS,
        "/static/stomp.umd.min.js": STOMPJS,
    }
    for url, path in files.items():

        async def serve(request: web.Request, path: Path = path) -> web.StreamResponse:
            return web.FileResponse(path)

        app.router.add_get(url, serve)


class StompDriver(Protocol):
    """Commands and events of ``stomp_probe.js`` (see its header)."""

    async def run(self, **command: Any) -> None: ...

    async def wait(
        self, name: str, kind: str, count: int = 1, timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        """At least ``count`` events of ``kind`` on connection ``name``; all of them."""

    async def wait_total(
        self, names: list[str], kind: str, count: int, timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        """As :meth:`wait`, counting the events of several connections together."""

    async def seen(self, name: str, kind: str) -> list[dict[str, Any]]:
        """Events of ``kind`` on ``name`` so far, without waiting."""


class NodeStomp(NodeClients):
    """``stomp_probe.js`` in a Node process."""

    script = PROBE_JS

    @classmethod
    def require(cls) -> None:
        require(shutil.which("node") is not None, "node")
        require_clients()

    async def run(self, **command: Any) -> None:
        await self._command(**command)

    async def wait_total(
        self, names: list[str], kind: str, count: int, timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]]:
            return [e for e in self._events if e["id"] in names and e["event"] == kind]

        await watch(self._changed, lambda: len(found()) >= count, timeout)
        return found()

    async def seen(self, name: str, kind: str) -> list[dict[str, Any]]:
        return self.events(name, kind)


class BrowserStomp:
    """``stomp_probe.js`` in a Chromium page (``stomp_probe.html``)."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def run(self, **command: Any) -> None:
        await self.page.evaluate("(command) => run(command)", command)

    async def wait(
        self, name: str, kind: str, count: int = 1, timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        return await self.wait_total([name], kind, count, timeout)

    async def wait_total(
        self, names: list[str], kind: str, count: int, timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.page.evaluate(
            "([n, k, c, t]) => waitFor(n, k, c, t)", [names, kind, count, int(timeout * 1000)]
        )
        return found

    async def seen(self, name: str, kind: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.page.evaluate(
            "([n, k]) => probeEvents.filter((e) => e.id === n && e.event === k)", [name, kind]
        )
        return found
