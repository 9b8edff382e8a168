"""The session-less routes (greeting, ``/info``, iframe page, OPTIONS), routing errors,
cookies for sticky load balancers, and disabled transports."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from tests.conftest import MakeEndpoint
from tests.helpers import NO_CACHE, TIMEOUT

ONE_YEAR = "31536000"
Client = TestClient[web.Request, web.Application]


def set_cookies(response: ClientResponse) -> list[str]:
    return response.headers.getall("Set-Cookie", [])


# -- greeting and /info ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sockjs", "/sockjs/"])
async def test_greeting(make_endpoint: MakeEndpoint, path: str) -> None:
    client, _ = await make_endpoint(cookie_needed=True)
    async with asyncio.timeout(TIMEOUT):
        response = await client.get(path)
        assert response.status == 200
        assert await response.text() == "Welcome to SockJS!\n"
    assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert set_cookies(response) == []


@pytest.mark.parametrize("cookie_needed", [False, True])
async def test_info_describes_the_endpoint(
    make_endpoint: MakeEndpoint, cookie_needed: bool
) -> None:
    client, _ = await make_endpoint(cookie_needed=cookie_needed)
    async with asyncio.timeout(TIMEOUT):
        first = await client.get("/sockjs/info")
        assert first.status == 200
        info = json.loads(await first.text())
        second = json.loads(await (await client.get("/sockjs/info")).text())
    assert first.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert first.headers["Cache-Control"] == NO_CACHE
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert set_cookies(first) == []
    assert set(info) == {"websocket", "cookie_needed", "origins", "entropy"}
    assert info["websocket"] is True
    assert info["cookie_needed"] is cookie_needed
    assert info["origins"] == ["*:*"]
    for entropy in (info["entropy"], second["entropy"]):
        assert isinstance(entropy, int)
        assert 0 <= entropy < 2**32
    assert info["entropy"] != second["entropy"]


async def test_info_echoes_the_origin(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        response = await client.get("/sockjs/info", headers={"Origin": "null"})
        assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "null"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


# -- OPTIONS -----------------------------------------------------------------------------


def assert_preflight(response: ClientResponse, methods: str) -> None:
    assert response.status == 204
    assert response.headers["Cache-Control"] == f"public, max-age={ONE_YEAR}"
    assert "Expires" in response.headers
    assert response.headers["Access-Control-Max-Age"] == ONE_YEAR
    assert response.headers["Access-Control-Allow-Methods"] == methods


async def test_info_preflight(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        response = await client.options("/sockjs/info", headers={"Origin": "https://app.example"})
        assert await response.read() == b""
    assert_preflight(response, "OPTIONS, GET")
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.parametrize("transport", ["xhr", "xhr_send", "xhr_streaming"])
async def test_xhr_preflight(make_endpoint: MakeEndpoint, transport: str) -> None:
    client, endpoint = await make_endpoint()
    headers = {
        "Origin": "https://app.example",
        "Access-Control-Request-Headers": "a, b, c",
    }
    async with asyncio.timeout(TIMEOUT):
        response = await client.options(f"/sockjs/000/pre/{transport}", headers=headers)
        assert await response.read() == b""
    assert_preflight(response, "OPTIONS, POST")
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert response.headers["Access-Control-Allow-Headers"] == "a, b, c"
    assert endpoint.session_count == 0  # a preflight opens no session


# -- the iframe page ---------------------------------------------------------------------

SOCKJS_URL = "http://cdn.example/sockjs-1.6.1.min.js"


@pytest.mark.parametrize("path", ["iframe.html", "iframe-1.2.3.html", "iframe-a.html?t=1"])
async def test_iframe_page(make_endpoint: MakeEndpoint, path: str) -> None:
    client, _ = await make_endpoint(sockjs_url=SOCKJS_URL, cookie_needed=True)
    async with asyncio.timeout(TIMEOUT):
        response = await client.get("/sockjs/" + path)
        assert response.status == 200
        page = await response.text()
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.headers["ETag"]
    assert response.headers["Cache-Control"] == f"public, max-age={ONE_YEAR}"
    assert "Expires" in response.headers
    assert "Last-Modified" not in response.headers
    assert set_cookies(response) == []
    assert f'<script src="{SOCKJS_URL}"></script>' in page


async def test_iframe_etag_revalidation(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        first = await client.get("/sockjs/iframe.html")
        etag = first.headers["ETag"]
        page = await first.read()
        # Every iframe name serves the same page, so the same ETag validates them all.
        cached = await client.get("/sockjs/iframe-x.html", headers={"If-None-Match": etag})
        assert cached.status == 304
        assert await cached.read() == b""
        other = await client.get("/sockjs/iframe.html", headers={"If-None-Match": '"other"'})
        assert other.status == 200
        assert await other.read() == page
    assert "Content-Type" not in cached.headers
    assert other.headers["ETag"] == etag


async def test_iframe_etag_follows_sockjs_url(make_endpoint: MakeEndpoint) -> None:
    one, _ = await make_endpoint(sockjs_url="http://a.example/sockjs.js")
    two, _ = await make_endpoint(sockjs_url="http://b.example/sockjs.js")
    async with asyncio.timeout(TIMEOUT):
        first = await one.get("/sockjs/iframe.html")
        second = await two.get("/sockjs/iframe.html")
    assert first.headers["ETag"] != second.headers["ETag"]


# -- routing errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/sockjs/iframe.htm",
        "/sockjs/IFRAME.HTML",
        "/sockjs/iframe-/.html",
        "/sockjs/a",
        "/sockjs/a/a",
        "/sockjs/a/a/",
        "/sockjs/a/a/bogus",
        "/sockjs/a/a/xhr_bogus",
        "/sockjs/a/a/eventsource_send",
        "/sockjs/a/a/xhr_streaming_send",
    ],
)
async def test_unknown_paths_are_404(make_endpoint: MakeEndpoint, path: str) -> None:
    client, endpoint = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        get = await client.get(path)
        post = await client.post(path)
    assert get.status == 404
    assert post.status == 404
    assert endpoint.session_count == 0


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/sockjs/000/m/xhr", "POST"),
        ("GET", "/sockjs/000/m/xhr_send", "POST"),
        ("GET", "/sockjs/000/m/xhr_streaming", "POST"),
        ("POST", "/sockjs/000/m/eventsource", "GET"),
        ("POST", "/sockjs/000/m/htmlfile", "GET"),
        ("POST", "/sockjs/000/m/jsonp", "GET"),
        ("GET", "/sockjs/000/m/jsonp_send", "POST"),
        ("POST", "/sockjs/000/m/websocket", "GET"),
        ("POST", "/sockjs/websocket", "GET"),
        ("POST", "/sockjs/iframe.html", "GET"),
        ("POST", "/sockjs/info", "GET"),
        ("POST", "/sockjs", "GET"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    make_endpoint: MakeEndpoint, method: str, path: str, allowed: str
) -> None:
    client, endpoint = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        response = await client.request(method, path)
        assert response.status == 405
        assert await response.read() == b""
    allow = {name.strip() for name in response.headers["Allow"].split(",")}
    assert allowed in allow
    assert method not in allow
    assert allow <= {"OPTIONS", "GET", "POST"}
    assert endpoint.session_count == 0


# -- JSESSIONID for sticky load balancers --------------------------------------------------


async def request_for(client: Client, transport: str, cookie: str | None) -> ClientResponse:
    """One request of ``transport`` on session ``ck-<transport>`` with no cookie from the
    jar, only ``cookie`` if given; streams are closed once their headers arrived."""
    client.session.cookie_jar.clear()
    headers = {"Cookie": f"JSESSIONID={cookie}"} if cookie else {}
    base = f"/sockjs/000/ck-{transport}"
    kwargs: dict[str, Any] = {"headers": headers}
    if transport in ("xhr_send", "jsonp_send"):
        await (await client.post(base + "/xhr")).read()
        client.session.cookie_jar.clear()
        kwargs["data"] = {"d": '["x"]'} if transport == "jsonp_send" else '["x"]'
        response = await client.post(base + "/" + transport, **kwargs)
    elif transport in ("eventsource", "htmlfile", "jsonp"):
        response = await client.get(base + "/" + transport + "?c=cb", **kwargs)
    else:
        response = await client.post(base + "/" + transport, **kwargs)
    assert response.status in (200, 204)
    response.close()
    return response


SESSION_TRANSPORTS = [
    "xhr",
    "xhr_send",
    "xhr_streaming",
    "eventsource",
    "htmlfile",
    "jsonp",
    "jsonp_send",
]


@pytest.mark.parametrize("transport", SESSION_TRANSPORTS)
@pytest.mark.parametrize(
    ("sent", "set_back"),
    [
        pytest.param(None, "dummy", id="none-sent-sets-a-dummy"),
        pytest.param("node-7.abc", "node-7.abc", id="echoes-the-clients"),
    ],
)
async def test_session_requests_set_the_sticky_cookie(
    make_endpoint: MakeEndpoint, transport: str, sent: str | None, set_back: str
) -> None:
    client, _ = await make_endpoint(cookie_needed=True)
    async with asyncio.timeout(TIMEOUT):
        response = await request_for(client, transport, sent)
    assert set_cookies(response) == [f"JSESSIONID={set_back}; Path=/"]


@pytest.mark.parametrize("transport", SESSION_TRANSPORTS)
async def test_no_cookie_unless_cookie_needed(make_endpoint: MakeEndpoint, transport: str) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        response = await request_for(client, transport, "abc")
    assert set_cookies(response) == []


# -- disabled transports -----------------------------------------------------------------


async def test_disabled_transports_are_404_and_others_work(make_endpoint: MakeEndpoint) -> None:
    client, endpoint = await make_endpoint(
        disabled_transports=frozenset({"xhr-streaming", "jsonp-polling"})
    )
    async with asyncio.timeout(TIMEOUT):
        assert (await client.post("/sockjs/000/d1/xhr_streaming")).status == 404
        assert (await client.options("/sockjs/000/d1/xhr_streaming")).status == 404
        assert (await client.get("/sockjs/000/d2/jsonp?c=cb")).status == 404
        assert endpoint.session_count == 0

        polled = await client.post("/sockjs/000/d3/xhr")
        assert await polled.text() == "o\n"
        assert (await client.post("/sockjs/000/d3/jsonp_send", data={"d": '["x"]'})).status == 404
        assert (await client.post("/sockjs/000/d3/xhr_send", data='["x"]')).status == 204
        stream = await client.get("/sockjs/000/d4/eventsource")
        assert stream.status == 200
        stream.close()
        info = json.loads(await (await client.get("/sockjs/info")).text())
    assert info["websocket"] is True


async def test_disabling_websocket_shows_in_info(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(disabled_transports=frozenset({"websocket"}))
    async with asyncio.timeout(TIMEOUT):
        info = json.loads(await (await client.get("/sockjs/info")).text())
        refused = await client.get("/sockjs/000/ws/websocket")
        polled = await client.post("/sockjs/000/ws/xhr")
        assert await polled.text() == "o\n"
    assert info["websocket"] is False
    assert refused.status == 404
