"""A refused ``authenticate`` fails sockjs-client at once: the hook also runs on ``/info``
(which carries the page's cookies), so a refused page gets one 403 and sockjs-client closes
with 1002 "Cannot connect to server", instead of trying all 8 transports (8 x 403) and
closing with 2000 "All transports failed". Real sockjs-client in Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from sockjs_gateway import SockJSOptions, add_endpoint
from sockjs_gateway.testserver import EchoHandler
from tests.clients.app import CLIENT_URL, add_page_routes
from tests.clients.conftest import CLIENT_JS, CLIENT_TRANSPORTS, require, served

pytestmark = pytest.mark.asyncio(loop_scope="module")
TIMEOUT_MS = 20000


@dataclass
class CookieAuth:
    """Admits requests carrying the cookie ``token=ok``; records every path it judged."""

    paths: list[str] = field(default_factory=list)

    async def __call__(self, request: web.Request) -> str:
        self.paths.append(request.path)
        if request.cookies.get("token") != "ok":
            raise web.HTTPForbidden(text="Who are you?")
        return "alice"


@dataclass
class Site:
    url: str
    auth: CookieAuth


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site() -> AsyncIterator[Site]:
    require(CLIENT_JS.is_file(), "sockjs-client (npm)")
    auth = CookieAuth()
    app = web.Application()
    options = SockJSOptions(sockjs_url=CLIENT_URL, authenticate=auth, disconnect_delay=1.0)
    add_endpoint(app, EchoHandler(), prefix="/secure", options=options)
    add_page_routes(app, CLIENT_JS)
    async with served(app) as url:
        yield Site(url, auth)


async def test_refused_page_fails_once_and_at_once(page: Any, site: Site) -> None:
    await page.goto(site.url + "/probe.html")
    site.auth.paths.clear()
    # Every transport allowed, as a real page would: the client gives up after /info.
    event = await page.evaluate(
        """([url, t]) => new Promise((resolve) => {
             const sock = new SockJS(url);
             sock.onclose = (e) => resolve({code: e.code, reason: e.reason});
             setTimeout(() => resolve(null), t);
           })""",
        [site.url + "/secure", TIMEOUT_MS],
    )
    assert event == {"code": 1002, "reason": "Cannot connect to server"}
    assert site.auth.paths == ["/secure/info"]


@pytest.mark.parametrize("transport", CLIENT_TRANSPORTS)
async def test_admitted_page_connects_on_every_transport(
    page: Any, site: Site, transport: str
) -> None:
    await page.goto(site.url + "/probe.html")
    await page.evaluate("() => { document.cookie = 'token=ok; path=/'; }")
    opened = await page.evaluate(
        "([n, u, t]) => openProbe(n, u, t)", ["main", site.url + "/secure", transport]
    )
    assert opened == transport
    await page.evaluate("() => probes.main.sock.send('hello')")
    echoed = await page.evaluate(f"() => probes.main.messagesUntil(1, {TIMEOUT_MS})")
    assert echoed == ["hello"]
