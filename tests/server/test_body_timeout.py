"""``body_timeout``: an ``xhr_send``/``jsonp_send`` body that trickles in is cut off with a
documented answer, and its session survives; a body split into packets that arrive in
time is served as usual."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sockjs_gateway.logs import refusal
from sockjs_gateway.server.http import BODY_TOO_SLOW
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT

BODY_TIMEOUT = 0.3


def port_of(client: TestClient[web.Request, web.Application]) -> int:
    port = client.server.port
    assert port is not None
    return port


async def post_in_pieces(port: int, path: str, body: bytes, pieces: int, pause: float) -> bytes:
    """POST ``body`` in ``pieces`` writes ``pause`` seconds apart over a raw connection
    (stopping early if the server answers); return everything the server sent until it
    closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode())
        step = -(-len(body) // pieces)
        answer = asyncio.ensure_future(reader.read())
        for start in range(0, len(body), step):  # bounded: `pieces` writes
            if answer.done():
                break
            writer.write(body[start : start + step])
            await writer.drain()
            await asyncio.wait([answer], timeout=pause)
        return await asyncio.wait_for(answer, TIMEOUT)
    finally:
        writer.close()


@pytest.mark.parametrize("transport", ["xhr", "jsonp"])
async def test_a_trickled_body_is_cut_off_and_the_session_survives(
    make_endpoint: MakeEndpoint, caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, body_timeout=BODY_TIMEOUT)
    path = "/sockjs/000/slow/" + transport
    opened = await client.get(path + "?c=cb") if transport == "jsonp" else await client.post(path)
    assert (await opened.text()).endswith(("o\n", '("o");\r\n'))
    refusal.reset()
    body = json.dumps(["never whole"]).encode()
    with caplog.at_level(logging.WARNING, "sockjs_gateway"):
        # Two pieces, each pause longer than the timeout: the first piece starts the
        # clock, the second comes too late.
        raw = await post_in_pieces(
            port_of(client), path + "_send", body, pieces=2, pause=BODY_TIMEOUT * 4
        )
    head, _, text = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"Connection: close" in head
    assert text.decode() == BODY_TOO_SLOW
    assert endpoint.stats.refused["body_timeout"] == 1
    lines = [r.getMessage() for r in caplog.records if "body not complete" in r.getMessage()]
    assert len(lines) == 1
    assert path + "_send" in lines[0]
    # Nothing of the cut body was delivered, and the session goes on.
    async with asyncio.timeout(TIMEOUT):
        sent = await client.post(path + "_send", data='["after"]')
        assert sent.status == (200 if transport == "jsonp" else 204)
        messages = await handler.wait_for("message")
    assert [event[2] for event in messages] == ["after"]


async def test_a_body_in_pieces_that_arrive_in_time_is_served(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, body_timeout=TIMEOUT)
    path = "/sockjs/000/pieces/xhr"
    assert await (await client.post(path)).text() == "o\n"
    body = json.dumps(["in", "five", "pieces"]).encode()
    raw = await post_in_pieces(port_of(client), path + "_send", body, pieces=5, pause=0.02)
    assert raw.startswith(b"HTTP/1.1 204 "), raw
    messages = await handler.wait_for("message", count=3)
    assert [event[2] for event in messages] == ["in", "five", "pieces"]
    assert endpoint.stats.refused["body_timeout"] == 0
