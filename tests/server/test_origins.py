"""The origin policy against a real server: same-origin by default, ``*``, and patterns,
on every route and on the WebSocket handshake (before the upgrade)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestClient

from sockjs_gateway import Endpoint, add_endpoint
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT

Client = TestClient[web.Request, web.Application]
FOREIGN = "http://evil.example.net"
FORBIDDEN = "Origin not allowed."


def own_origin(client: Client) -> str:
    """The origin of a page served by the test server itself."""
    return f"http://127.0.0.1:{client.port}"


async def same_origin_server(make_endpoint: MakeEndpoint) -> tuple[Client, Endpoint]:
    return await make_endpoint(RecordingHandler(), allowed_origins=())


async def request(
    client: Client, method: str, path: str, headers: dict[str, str], data: str | None = None
) -> tuple[int, str, Any]:
    async with asyncio.timeout(TIMEOUT):
        response = await client.request(method, path, headers=headers, data=data)
        return response.status, await response.text(), response.headers


async def open_xhr_session(client: Client, session_id: str) -> None:
    """Open a session over xhr-polling as a non-browser client (no Origin)."""
    status, body, _ = await request(client, "POST", f"/sockjs/000/{session_id}/xhr", {})
    assert (status, body) == (200, "o\n")


# -- same origin only (the default) ------------------------------------------------------


def test_default_is_same_origin_only() -> None:
    app = web.Application()
    endpoint = add_endpoint(app, RecordingHandler())
    assert endpoint.options.allowed_origins == ()
    assert endpoint.origins.same_origin_only


async def test_same_origin_xhr_is_served_with_cors_echo(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, allowed_origins=())
    origin = {"Origin": own_origin(client)}
    status, body, headers = await request(client, "POST", "/sockjs/000/so/xhr", origin)
    assert (status, body) == (200, "o\n")
    assert headers["Access-Control-Allow-Origin"] == own_origin(client)
    assert headers["Access-Control-Allow-Credentials"] == "true"
    status, _, _ = await request(client, "POST", "/sockjs/000/so/xhr_send", origin, '["hi"]')
    assert status == 204
    status, body, _ = await request(client, "POST", "/sockjs/000/so/xhr", origin)
    assert (status, body) == (200, 'a["hi"]\n')
    status, body, headers = await request(client, "GET", "/sockjs/info", origin)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == own_origin(client)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sockjs/info"),
        ("OPTIONS", "/sockjs/info"),
        ("OPTIONS", "/sockjs/000/foreign/xhr"),
        ("POST", "/sockjs/000/foreign/xhr"),
        ("POST", "/sockjs/000/foreign/xhr_streaming"),
        ("GET", "/sockjs/000/foreign/eventsource"),
        ("OPTIONS", "/sockjs/000/foreign/xhr_send"),
    ],
)
async def test_foreign_origin_is_403_and_opens_nothing(
    make_endpoint: MakeEndpoint, method: str, path: str
) -> None:
    client, endpoint = await same_origin_server(make_endpoint)
    status, body, headers = await request(client, method, path, {"Origin": FOREIGN})
    assert (status, body) == (403, FORBIDDEN)
    assert "Access-Control-Allow-Origin" not in headers
    assert endpoint.session_count == 0
    assert endpoint.stats.refused["origin"] == 1


async def test_foreign_xhr_send_to_an_existing_session_is_403_and_harmless(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, allowed_origins=())
    await open_xhr_session(client, "victim")
    status, body, _ = await request(
        client, "POST", "/sockjs/000/victim/xhr_send", {"Origin": FOREIGN}, '["forged"]'
    )
    assert (status, body) == (403, FORBIDDEN)
    status, _, _ = await request(client, "POST", "/sockjs/000/victim/xhr_send", {}, '["own"]')
    assert status == 204
    status, body, _ = await request(client, "POST", "/sockjs/000/victim/xhr", {})
    assert body == 'a["own"]\n'
    assert [event[2] for event in handler.of_kind("message")] == ["own"]


@pytest.mark.parametrize("path", ["/sockjs/000/wsf/websocket", "/sockjs/websocket"])
async def test_foreign_origin_websocket_handshake_is_403_before_upgrade(
    make_endpoint: MakeEndpoint, path: str
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, allowed_origins=())
    with pytest.raises(WSServerHandshakeError) as refused:
        await asyncio.wait_for(client.ws_connect(path, origin=FOREIGN), TIMEOUT)
    assert refused.value.status == 403
    assert endpoint.session_count == 0
    assert handler.events == []


@pytest.mark.parametrize("path", ["/sockjs/000/wso/websocket", "/sockjs/websocket"])
async def test_same_origin_websocket_is_served(make_endpoint: MakeEndpoint, path: str) -> None:
    client, _ = await same_origin_server(make_endpoint)
    async with client.ws_connect(path, origin=own_origin(client)) as ws:
        if "000" in path:
            assert (await ws.receive(timeout=TIMEOUT)).data == "o"
            await ws.send_str('["same"]')
            assert (await ws.receive(timeout=TIMEOUT)).data == 'a["same"]'
        else:
            await ws.send_str("same")
            assert (await ws.receive(timeout=TIMEOUT)).data == "same"


async def test_no_origin_is_served_for_non_browser_clients(make_endpoint: MakeEndpoint) -> None:
    client, _ = await same_origin_server(make_endpoint)
    await open_xhr_session(client, "cli")
    status, _, _ = await request(client, "POST", "/sockjs/000/cli/xhr_send", {}, '["x"]')
    assert status == 204
    status, _, headers = await request(client, "GET", "/sockjs/info", {})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    async with client.ws_connect("/sockjs/000/cliws/websocket") as ws:
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
    async with client.ws_connect("/sockjs/websocket") as raw:
        await raw.send_str("raw")
        assert (await raw.receive(timeout=TIMEOUT)).data == "raw"


# -- transports without Origin: the Referer must prove an allowed page ---------------------

PROOF_ROUTES = [
    ("GET", "/sockjs/000/{sid}/htmlfile?c=cb", 200),
    ("GET", "/sockjs/000/{sid}/jsonp?c=cb", 200),
    ("GET", "/sockjs/iframe.html", 200),
    ("GET", "/sockjs/iframe-abc.html", 200),
]


async def answer(client: Client, method: str, path: str, headers: dict[str, str]) -> int:
    """Status of a request whose response may be a stream (read only its head)."""
    async with asyncio.timeout(TIMEOUT):
        response = await client.request(method, path, headers=headers)
        status = response.status
        response.close()
        return status


@pytest.mark.parametrize(("method", "path", "ok"), PROOF_ROUTES)
async def test_same_origin_referer_is_served(
    make_endpoint: MakeEndpoint, method: str, path: str, ok: int
) -> None:
    client, _ = await same_origin_server(make_endpoint)
    referer = own_origin(client) + "/app/page.html?q=1"
    assert await answer(client, method, path.format(sid="ref"), {"Referer": referer}) == ok


@pytest.mark.parametrize(("method", "path", "ok"), PROOF_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {"Referer": FOREIGN + "/page.html"},
        {},
        {"Referer": "not a url"},
        {"Origin": FOREIGN},
    ],
    ids=["foreign-referer", "no-referer", "bad-referer", "foreign-origin"],
)
async def test_without_an_allowed_referer_is_403(
    make_endpoint: MakeEndpoint, method: str, path: str, ok: int, headers: dict[str, str]
) -> None:
    client, endpoint = await same_origin_server(make_endpoint)
    status, body, _ = await request(client, method, path.format(sid="noref"), headers)
    assert (status, body) == (403, FORBIDDEN)
    assert endpoint.session_count == 0


async def test_jsonp_send_needs_an_allowed_referer(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, allowed_origins=())
    referer = {"Referer": own_origin(client) + "/page.html"}
    status, body, _ = await request(client, "GET", "/sockjs/000/js/jsonp?c=cb", referer)
    assert (status, body) == (200, '/**/cb("o");\r\n')
    form = {**referer, "Content-Type": "application/x-www-form-urlencoded"}
    for headers in ({}, {"Referer": FOREIGN + "/"}):
        headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        status, body, _ = await request(
            client, "POST", "/sockjs/000/js/jsonp_send", headers, 'd=["forged"]'
        )
        assert (status, body) == (403, FORBIDDEN)
    status, body, _ = await request(client, "POST", "/sockjs/000/js/jsonp_send", form, 'd=["mine"]')
    assert (status, body) == (200, "ok")
    await handler.wait_for("message")
    assert [event[2] for event in handler.of_kind("message")] == ["mine"]


@pytest.mark.parametrize(("method", "path", "ok"), PROOF_ROUTES)
async def test_star_serves_script_transports_without_referer(
    make_endpoint: MakeEndpoint, method: str, path: str, ok: int
) -> None:
    client, _ = await make_endpoint(allowed_origins=("*",))
    assert await answer(client, method, path.format(sid="star"), {}) == ok
    assert await answer(client, method, path.format(sid="star2"), {"Origin": FOREIGN}) == ok


async def test_iframe_frame_options(make_endpoint: MakeEndpoint) -> None:
    client, _ = await same_origin_server(make_endpoint)
    referer = {"Referer": own_origin(client) + "/"}
    status, _, headers = await request(client, "GET", "/sockjs/iframe.html", referer)
    assert status == 200
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    star, _ = await make_endpoint(allowed_origins=("*",))
    status, _, headers = await request(star, "GET", "/sockjs/iframe.html", {})
    assert status == 200
    assert "X-Frame-Options" not in headers


# -- patterns ------------------------------------------------------------------------------

PATTERNS = ("https://*.example.com", "http://localhost:*")


@pytest.mark.parametrize(
    "origin", ["https://app.example.com", "https://a.b.example.com", "http://localhost:3000"]
)
async def test_patterns_allow_matching_origins(make_endpoint: MakeEndpoint, origin: str) -> None:
    client, _ = await make_endpoint(allowed_origins=PATTERNS)
    status, body, headers = await request(client, "POST", "/sockjs/000/pat/xhr", {"Origin": origin})
    assert (status, body) == (200, "o\n")
    assert headers["Access-Control-Allow-Origin"] == origin
    async with client.ws_connect("/sockjs/000/patws/websocket", origin=origin) as ws:
        assert (await ws.receive(timeout=TIMEOUT)).data == "o"
    referer = {"Referer": origin + "/page"}
    assert await answer(client, "GET", "/sockjs/000/path/htmlfile?c=cb", referer) == 200


@pytest.mark.parametrize(
    "origin",
    ["https://example.com", "http://app.example.com", "https://app.example.com.evil.net", FOREIGN],
)
async def test_patterns_refuse_other_origins(make_endpoint: MakeEndpoint, origin: str) -> None:
    client, endpoint = await make_endpoint(allowed_origins=PATTERNS)
    status, body, _ = await request(client, "POST", "/sockjs/000/pat/xhr", {"Origin": origin})
    assert (status, body) == (403, FORBIDDEN)
    with pytest.raises(WSServerHandshakeError) as refused:
        await asyncio.wait_for(
            client.ws_connect("/sockjs/000/patws/websocket", origin=origin), TIMEOUT
        )
    assert refused.value.status == 403
    status, _, _ = await request(
        client, "GET", "/sockjs/000/path/jsonp?c=cb", {"Referer": origin + "/"}
    )
    assert status == 403
    assert endpoint.session_count == 0


async def test_patterns_keep_the_servers_own_origin(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(allowed_origins=PATTERNS)
    status, body, _ = await request(
        client, "POST", "/sockjs/000/own/xhr", {"Origin": own_origin(client)}
    )
    assert (status, body) == (200, "o\n")


# -- /info tells the truth -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "advertised"),
    [(("*",), ["*:*"]), (PATTERNS, list(PATTERNS)), ((), [])],
)
async def test_info_reports_the_origins(
    make_endpoint: MakeEndpoint, allowed: tuple[str, ...], advertised: list[str]
) -> None:
    client, _ = await make_endpoint(allowed_origins=allowed)
    status, body, _ = await request(client, "GET", "/sockjs/info", {})
    assert status == 200
    assert json.loads(body)["origins"] == advertised
