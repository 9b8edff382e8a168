"""xhr-polling: ``POST .../xhr`` receives, ``POST .../xhr_send`` sends."""

from __future__ import annotations

import asyncio

from tests.conftest import MakeEndpoint, RecordingHandler


async def test_open_send_and_poll_back(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    response = await client.post("/sockjs/000/abc/xhr")
    assert response.status == 200
    assert await response.text() == "o\n"
    assert response.headers["Content-Type"] == "application/javascript; charset=UTF-8"

    sent = await client.post("/sockjs/000/abc/xhr_send", data='["hello", "world"]')
    assert sent.status == 204
    assert await sent.read() == b""

    response = await client.post("/sockjs/000/abc/xhr")
    assert await response.text() == 'a["hello","world"]\n'
    messages = await handler.wait_for("message", 2)
    assert [event[2] for event in messages] == ["hello", "world"]


async def test_long_poll_waits_for_a_message(make_endpoint: MakeEndpoint) -> None:
    client, endpoint = await make_endpoint()
    assert await (await client.post("/sockjs/000/lp/xhr")).text() == "o\n"
    poll = asyncio.ensure_future(client.post("/sockjs/000/lp/xhr"))
    await asyncio.sleep(0.05)
    assert not poll.done()
    assert endpoint.broadcast("late") == 1
    response = await asyncio.wait_for(poll, 5)
    assert await response.text() == 'a["late"]\n'
