"""The Prometheus route: counters of every endpoint, read on scrape, that match the
traffic and trouble a real server went through."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sockjs_gateway import Session, SockJSOptions, add_endpoint, add_metrics_route
from tests.conftest import RecordingHandler
from tests.helpers import TIMEOUT

Client = TestClient[web.Request, web.Application]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Handler(RecordingHandler):
    """Echoes, and raises on "boom"."""

    async def on_message(self, session: Session, message: str) -> None:
        if message == "boom":
            raise RuntimeError("handler bug")
        await super().on_message(session, message)


async def scrape(client: Client, path: str = "/metrics") -> Samples:
    async with asyncio.timeout(TIMEOUT):
        response = await client.get(path)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def post(client: Client, path: str, data: str | None = None) -> str:
    async with asyncio.timeout(TIMEOUT):
        response = await client.post(path, data=data)
        assert response.status in (200, 204)
        return await response.text()


async def test_metrics_match_the_traffic(aiohttp_client: Any) -> None:
    app = web.Application()
    handler_a, handler_b = Handler(), RecordingHandler()
    a = add_endpoint(app, handler_a, prefix="/a", options=SockJSOptions(max_queued_messages=3))
    b = add_endpoint(
        app,
        handler_b,
        prefix="/b",
        options=SockJSOptions(
            allowed_origins=("*",),
            slow_consumer="drop-newest",
            max_queued_messages=1,
            disconnect_delay=1.0,
        ),
    )
    add_metrics_route(app)
    client: Client = await aiohttp_client(app)
    written = 0  # bytes the server wrote to clients of /a

    # /a over xhr-polling: two messages in, echoed.
    for body in (await post(client, "/a/000/x1/xhr"),):
        written += len(body)
    assert await post(client, "/a/000/x1/xhr_send", '["m1","m2"]') == ""
    await handler_a.wait_for("message", 2)
    polled = await post(client, "/a/000/x1/xhr")
    assert polled == 'a["m1","m2"]\n'
    written += len(polled)

    # /a over WebSocket: one message in, echoed.
    async with client.ws_connect("/a/000/w1/websocket") as ws:
        frames = [(await ws.receive(timeout=TIMEOUT)).data]
        await ws.send_str('["hello"]')
        frames.append((await ws.receive(timeout=TIMEOUT)).data)
        assert frames == ["o", 'a["hello"]']
        written += sum(len(frame) + 2 for frame in frames)  # + 2-byte WebSocket frame headers

        # /a refuses a foreign origin.
        refused = await client.get("/a/info", headers={"Origin": "http://evil.example"})
        assert refused.status == 403

        # /a: a polling session that does not poll overflows its queue of 3.
        written += len(await post(client, "/a/000/slow/xhr"))
        (slow,) = [s for s in handler_a.sessions if s.id == "slow"]
        assert [slow.send(f"s{i}") for i in range(4)] == [True, True, True, False]

        # /a: the handler fails on "boom".
        assert await post(client, "/a/000/x1/xhr_send", '["boom"]') == ""
        await handler_a.wait_for("close", 2)

        # /b drops the newest past one queued message, then the session times out.
        written_b = len(await post(client, "/b/000/y1/xhr"))
        (y1,) = await handler_b.wait_for("open")
        assert [y1[1].send(f"d{i}") for i in range(3)] == [True, False, False]
        polled = await post(client, "/b/000/y1/xhr")
        assert polled == 'a["d0"]\n'
        written_b += len(polled)
        await handler_b.wait_for("close")

        samples = await scrape(client)

    opened, closed = "sockjs_sessions_opened_total", "sockjs_sessions_closed_total"
    assert value(samples, opened, endpoint="/a", transport="xhr-polling") == 2
    assert value(samples, opened, endpoint="/a", transport="websocket") == 1
    assert value(samples, opened, endpoint="/b", transport="xhr-polling") == 1
    assert value(samples, closed, endpoint="/a", transport="xhr-polling") == 2
    assert value(samples, closed, endpoint="/a", transport="websocket") == 0
    assert value(samples, closed, endpoint="/b", transport="xhr-polling") == 1
    expected = {
        "sockjs_messages_in_total": (4, 0),  # m1, m2, hello, boom
        "sockjs_messages_out_total": (6, 1),  # m1, m2, hello, s0-s2 | d0
        "sockjs_bytes_in_total": (len('["m1","m2"]["hello"]["boom"]'), 0),
        "sockjs_bytes_out_total": (written, written_b),
        "sockjs_slow_consumer_closes_total": (1, 0),
        "sockjs_slow_consumer_drops_total": (3, 2),  # s0-s2 discarded on close | d1, d2
        "sockjs_session_timeouts_total": (0, 1),
        "sockjs_heartbeat_timeouts_total": (0, 0),
        "sockjs_handler_errors_total": (1, 0),
    }
    for name, (for_a, for_b) in expected.items():
        assert (value(samples, name, endpoint="/a"), value(samples, name, endpoint="/b")) == (
            for_a,
            for_b,
        ), name
    assert value(samples, "sockjs_requests_refused_total", endpoint="/a", reason="origin") == 1
    assert value(samples, "sockjs_requests_refused_total", endpoint="/b", reason="origin") == 0
    # Sessions held at the time of the scrape.
    held = "sockjs_sessions"
    assert value(samples, held, endpoint="/a", transport="websocket", state="open") == 1
    assert value(samples, held, endpoint="/a", transport="xhr-polling", state="closed") == 2
    assert [k for k in samples if k[0] == held and ("endpoint", "/b") in k[1]] == []
    # The counters are the endpoint's own.
    assert a.stats.messages_in == 4
    assert b.stats.slow_consumer_drops == 2


async def test_refusals_by_reason(aiohttp_client: Any) -> None:
    async def deny(request: web.Request) -> None:
        raise web.HTTPForbidden()

    app = web.Application()
    add_endpoint(app, RecordingHandler(), options=SockJSOptions(max_sessions=1))
    add_endpoint(app, RecordingHandler(), prefix="/auth", options=SockJSOptions(authenticate=deny))
    add_metrics_route(app, "/custom-metrics")
    client: Client = await aiohttp_client(app)
    async with asyncio.timeout(TIMEOUT):
        assert (await client.post("/sockjs/000/one/xhr")).status == 200
        assert (await client.post("/sockjs/000/two/xhr")).status == 503
        assert (await client.post("/auth/000/x/xhr")).status == 403
        foreign = {"Origin": "http://evil.example"}
        assert (await client.post("/sockjs/000/three/xhr", headers=foreign)).status == 403
    samples = await scrape(client, "/custom-metrics")
    refused = "sockjs_requests_refused_total"
    assert value(samples, refused, endpoint="/sockjs", reason="capacity") == 1
    assert value(samples, refused, endpoint="/sockjs", reason="origin") == 1
    assert value(samples, refused, endpoint="/auth", reason="auth") == 1


async def test_metrics_without_endpoints(aiohttp_client: Any) -> None:
    app = web.Application()
    add_metrics_route(app)
    client: Client = await aiohttp_client(app)
    assert await scrape(client) == {}
