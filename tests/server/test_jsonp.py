"""jsonp-polling: ``GET .../jsonp?c=callback`` receives, ``POST .../jsonp_send`` sends."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import NO_CACHE, TIMEOUT, json_between

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def frame_of(body: str, callback: str = "cb") -> str:
    """The frame passed to the callback, evaluated as the browser would (a JS string)."""
    literal = json_between(body, f"/**/{callback}(", ");\r\n")
    assert isinstance(literal, str)
    return literal


async def test_poll_wraps_the_open_frame_in_the_callback(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        response = await client.get("/sockjs/000/j1/jsonp?c=cb")
        assert response.status == 200
        assert await response.text() == '/**/cb("o");\r\n'
    assert response.headers["Content-Type"] == "application/javascript; charset=UTF-8"
    assert response.headers["Cache-Control"] == NO_CACHE
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_form_send_is_delivered_and_polled_back(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    text = 'x & y = "z" </script> 你好'
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.get("/sockjs/000/j2/jsonp?c=cb")).text() == '/**/cb("o");\r\n'
        sent = await client.post("/sockjs/000/j2/jsonp_send", data={"d": json.dumps([text])})
        assert sent.status == 200
        assert await sent.text() == "ok"
        assert sent.headers["Content-Type"] == "text/plain; charset=UTF-8"
        assert sent.headers["X-Content-Type-Options"] == "nosniff"
        await handler.wait_for("message")
        polled = await (await client.get("/sockjs/000/j2/jsonp?c=cb")).text()
    assert [event[2] for event in handler.of_kind("message")] == [text]
    assert "</script" not in polled
    assert json.loads(frame_of(polled)[1:]) == [text]


async def test_raw_json_body_send_is_delivered(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        await (await client.get("/sockjs/000/j3/jsonp?c=cb")).read()
        sent = await client.post(
            "/sockjs/000/j3/jsonp_send",
            data='["plain", "text"]',
            headers={"Content-Type": "text/plain"},
        )
        assert sent.status == 200
        assert await sent.text() == "ok"
        await handler.wait_for("message", 2)
        polled = await (await client.get("/sockjs/000/j3/jsonp?c=cb")).text()
    assert frame_of(polled) == 'a["plain","text"]'


@pytest.mark.parametrize(
    ("body", "headers", "answer"),
    [
        ("", FORM, "Payload expected."),
        ("d=", FORM, "Payload expected."),
        ("p=p", FORM, "Payload expected."),
        ("", {"Content-Type": "text/plain"}, "Payload expected."),
        ("d=%5B%22x%22", FORM, "Broken JSON encoding."),
        ('["x"', {"Content-Type": "text/plain"}, "Broken JSON encoding."),
    ],
    ids=["form-without-d", "empty-d", "p=p", "empty-raw", "broken-form", "broken-raw"],
)
async def test_bad_send_bodies_are_refused(
    make_endpoint: MakeEndpoint, body: str, headers: dict[str, str], answer: str
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        await (await client.get("/sockjs/000/j4/jsonp?c=cb")).read()
        sent = await client.post("/sockjs/000/j4/jsonp_send", data=body, headers=headers)
        assert sent.status == 500
        assert await sent.text() == answer
        # The session is unharmed.
        sent = await client.post("/sockjs/000/j4/jsonp_send", data={"d": '["fine"]'})
        assert sent.status == 200
        await handler.wait_for("message")
    assert [event[2] for event in handler.of_kind("message")] == ["fine"]


async def test_send_to_unknown_session_is_404(make_endpoint: MakeEndpoint) -> None:
    client, endpoint = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        sent = await client.post("/sockjs/000/nobody/jsonp_send", data={"d": '["x"]'})
        assert sent.status == 404
    assert endpoint.session_count == 0
