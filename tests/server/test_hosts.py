"""Host and scheme against a real server: ``allowed_hosts`` refuses a DNS-rebound page
with 421 on every route (WebSocket handshakes before the upgrade), the same-origin check
compares schemes (honouring a TLS proxy's ``X-Forwarded-Proto``), and each refusal is one
rate-limited log line naming what was seen and what is allowed."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestClient

from sockjs_gateway import add_endpoint
from sockjs_gateway.logs import refusal
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT

Client = TestClient[web.Request, web.Application]
REBIND = "rebind.evil.com"


async def status(
    client: Client, method: str, path: str, headers: dict[str, str]
) -> tuple[int, str]:
    async with asyncio.timeout(TIMEOUT):
        response = await client.request(method, path, headers=headers)
        return response.status, await response.text()


def test_add_endpoint_answers_every_host_unless_told() -> None:
    endpoint = add_endpoint(web.Application(), RecordingHandler())
    assert endpoint.options.allowed_hosts == ()
    assert endpoint.hosts.any


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sockjs/info"),
        ("POST", "/sockjs/000/rb/xhr"),
        ("POST", "/sockjs/000/rb/xhr_streaming"),
        ("GET", "/sockjs/000/rb/eventsource"),
        ("GET", "/sockjs/000/rb/htmlfile?c=x"),
        ("GET", "/sockjs/000/rb/jsonp?c=x"),
        ("GET", "/sockjs/iframe.html"),
    ],
)
async def test_a_rebound_page_gets_421_on_every_route(
    make_endpoint: MakeEndpoint, method: str, path: str
) -> None:
    client, endpoint = await make_endpoint(allowed_origins=(), allowed_hosts=("localhost",))
    rebound = {"Host": f"{REBIND}:{client.port}", "Origin": f"http://{REBIND}:{client.port}"}
    assert await status(client, method, path, rebound) == (421, "Host not allowed.")
    assert endpoint.session_count == 0
    own = {"Host": f"localhost:{client.port}", "Origin": f"http://localhost:{client.port}"}
    async with asyncio.timeout(TIMEOUT):
        response = await client.request(method, path, headers=own)
        assert response.status == 200  # streams stay open: the body is not awaited
        response.close()


@pytest.mark.parametrize("path", ["/sockjs/000/rbw/websocket", "/sockjs/websocket"])
async def test_a_rebound_websocket_handshake_gets_421_before_the_upgrade(
    make_endpoint: MakeEndpoint, path: str
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(
        handler, allowed_origins=(), allowed_hosts=("localhost",)
    )
    with pytest.raises(WSServerHandshakeError) as refused:
        await asyncio.wait_for(
            client.ws_connect(
                path, origin=f"http://{REBIND}:{client.port}", headers={"Host": REBIND}
            ),
            TIMEOUT,
        )
    assert refused.value.status == 421
    assert (endpoint.session_count, handler.events) == (0, [])


async def test_host_refusals_are_logged_once_per_interval(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    refusal.reset()
    client, endpoint = await make_endpoint(allowed_hosts=("app.example.com",))
    with caplog.at_level(logging.WARNING, "sockjs_gateway"):
        for _ in range(5):
            assert (await status(client, "GET", "/sockjs/info", {"Host": REBIND}))[0] == 421
    lines = [r.getMessage() for r in caplog.records if r.name == "sockjs_gateway"]
    assert len(lines) == 1
    assert lines[0].startswith(f"Host '{REBIND}' refused on /sockjs/info from 127.0.0.1")
    assert lines[0].endswith("(allowed_hosts: app.example.com)")
    assert endpoint.stats.refused["host"] == 5


# -- scheme -------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["https", "ws", "wss"])
async def test_another_scheme_on_the_same_host_and_port_is_refused(
    make_endpoint: MakeEndpoint, scheme: str
) -> None:
    client, _ = await make_endpoint(allowed_origins=())
    origin = {"Origin": f"{scheme}://127.0.0.1:{client.port}"}
    assert await status(client, "POST", "/sockjs/000/sch/xhr", origin) == (
        403,
        "Origin not allowed.",
    )
    with pytest.raises(WSServerHandshakeError) as refused:
        await asyncio.wait_for(
            client.ws_connect("/sockjs/websocket", origin=origin["Origin"]), TIMEOUT
        )
    assert refused.value.status == 403


async def test_a_tls_proxys_forwarded_scheme_is_the_requests_scheme(
    make_endpoint: MakeEndpoint,
) -> None:
    client, _ = await make_endpoint(allowed_origins=())
    host = {"Host": "app.example.com"}
    https_page = {**host, "Origin": "https://app.example.com"}
    http_page = {**host, "Origin": "http://app.example.com"}
    assert (await status(client, "GET", "/sockjs/info", https_page))[0] == 403
    proxied = {"X-Forwarded-Proto": "https"}
    assert (await status(client, "GET", "/sockjs/info", {**https_page, **proxied}))[0] == 200
    assert (await status(client, "GET", "/sockjs/info", {**http_page, **proxied}))[0] == 403
    forwarded = {"Forwarded": "for=10.0.0.1;proto=https"}
    assert (await status(client, "GET", "/sockjs/info", {**https_page, **forwarded}))[0] == 200


async def test_origin_refusals_are_logged_with_the_origin_and_the_allowed_list(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    refusal.reset()
    client, _ = await make_endpoint(allowed_origins=())
    with caplog.at_level(logging.WARNING, "sockjs_gateway"):
        for _ in range(3):
            await status(client, "GET", "/sockjs/info", {"Origin": "https://evil.example"})
    lines = [r.getMessage() for r in caplog.records if r.name == "sockjs_gateway"]
    assert lines == [
        "Origin 'https://evil.example' refused on /sockjs/info from 127.0.0.1"
        f" (allowed_origins: same origin: http://127.0.0.1:{client.port})"
    ]
