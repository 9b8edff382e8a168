"""Every refusal leaves one line on the ``sockjs_gateway`` logger, naming what was refused
and why, rate-limited per kind so that a flood cannot fill a disk. Against a real server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import WSMsgType, web

from sockjs_gateway.logs import refusal
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT


@pytest.fixture(autouse=True)
def fresh_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every line is written (no rate limit) unless a test sets an interval."""
    refusal.reset()
    monkeypatch.setattr(refusal, "interval", 0.0)
    yield
    refusal.reset()


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """The library's log lines containing ``text``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sockjs_gateway" and text in r.getMessage()
    ]


async def test_origin_refused_names_the_origin_and_the_allowed_list(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = await make_endpoint(allowed_origins=("https://good.example",))
    caplog.set_level(logging.INFO, "sockjs_gateway")
    response = await client.post("/sockjs/000/abc/xhr", headers={"Origin": "https://evil.example"})
    assert response.status == 403
    [line] = lines(caplog, "Origin")
    assert "'https://evil.example'" in line
    assert "https://good.example" in line  # the allowed list
    assert "/sockjs/000/abc/xhr" in line  # the session id is in the path
    assert "127.0.0.1" in line


async def test_authenticate_refusal_is_logged(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    async def authenticate(request: web.Request) -> str:
        raise web.HTTPForbidden()

    client, _ = await make_endpoint(authenticate=authenticate)
    caplog.set_level(logging.INFO, "sockjs_gateway")
    assert (await client.post("/sockjs/000/who/xhr")).status == 403
    [line] = lines(caplog, "authenticate refused")
    assert "403" in line
    assert "session 'who'" in line
    assert "127.0.0.1" in line


async def test_max_sessions_503_is_logged(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = await make_endpoint(max_sessions=1)
    caplog.set_level(logging.INFO, "sockjs_gateway")
    assert await (await client.post("/sockjs/000/one/xhr")).text() == "o\n"
    assert (await client.post("/sockjs/000/two/xhr")).status == 503
    [line] = lines(caplog, "max_sessions")
    assert "max_sessions (1)" in line
    assert "session 'two'" in line


@pytest.mark.parametrize("compression", [False, True], ids=["direct", "deflate"])
async def test_1007_and_1009_closes_are_logged(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture, compression: bool
) -> None:
    client, _ = await make_endpoint(max_message_bytes=100, websocket_compression=compression)
    caplog.set_level(logging.INFO, "sockjs_gateway")
    for sid, payload, code in [("bad", "[1]", 1007), ("big", json.dumps(["x" * 200]), 1009)]:
        async with client.ws_connect(f"/sockjs/000/{sid}/websocket") as ws:
            assert (await ws.receive(timeout=TIMEOUT)).data == "o"
            await ws.send_str(payload)
            msg = await ws.receive(timeout=TIMEOUT)
            assert (msg.type, msg.data) == (WSMsgType.CLOSE, code)
    found = lines(caplog, "closed with 100")
    assert len(found) == 2
    assert "Session 'bad'" in found[0]
    assert "closed with 1007" in found[0]
    assert "Payload expected." in found[0]
    assert "Session 'big'" in found[1]
    assert "closed with 1009" in found[1]


async def test_slow_consumer_close_is_logged(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, max_queued_messages=2)
    caplog.set_level(logging.INFO, "sockjs_gateway")
    assert await (await client.post("/sockjs/000/slow/xhr")).text() == "o\n"
    for i in range(3):  # nobody polls: the third overflows the queue
        endpoint.broadcast(f"m{i}")
    await handler.wait_for("close")
    found = lines(caplog, "low consumer")
    assert any("2 queued messages dropped" in line for line in found), found
    assert any("closed with 4500" in line and "queue was full" in line for line in found)
    assert all("Session 'slow'" in line for line in found)


async def test_drop_policy_logs_the_drops_and_queued_bytes(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    client, endpoint = await make_endpoint(max_queued_messages=2, slow_consumer="drop-newest")
    caplog.set_level(logging.INFO, "sockjs_gateway")
    assert await (await client.post("/sockjs/000/lossy/xhr")).text() == "o\n"
    for i in range(3):
        endpoint.broadcast(f"m{i}")
    [line] = lines(caplog, "low consumer")
    assert "1 queued messages dropped" in line
    assert "bytes still queued" in line


async def test_a_flood_is_rate_limited_then_summarised(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = await make_endpoint(allowed_origins=("https://good.example",))
    caplog.set_level(logging.INFO, "sockjs_gateway")
    monkeypatch.setattr(refusal, "interval", 0.5)
    headers = {"Origin": "https://evil.example"}
    for _ in range(15):
        assert (await client.get("/sockjs/info", headers=headers)).status == 403
    assert len(lines(caplog, "Origin")) == 1  # one line per kind per interval
    await asyncio.sleep(0.6)  # the next interval
    assert (await client.get("/sockjs/info", headers=headers)).status == 403
    found = lines(caplog, "Origin")
    assert len(found) == 2
    assert found[1].endswith("(14 more origin refusals not logged)")


async def test_nothing_is_formatted_when_the_level_is_off(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = await make_endpoint(allowed_origins=("https://good.example",))
    caplog.set_level(logging.ERROR, "sockjs_gateway")
    headers = {"Origin": "https://evil.example"}
    assert (await client.get("/sockjs/info", headers=headers)).status == 403
    assert lines(caplog, "Origin") == []
