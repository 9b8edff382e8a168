"""What the server refuses: bad session ids, oversized and malformed bodies; and that a
refusal never costs the client its session."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT

Client = TestClient[web.Request, web.Application]


async def open_session(client: Client, path: str) -> None:
    polled = await client.post(path + "/xhr")
    assert await polled.text() == "o\n"


async def echoes(client: Client, path: str, text: str) -> bool:
    """Whether ``text`` sent on the session comes back on its polls (the echo handler)."""
    sent = await client.post(path + "/xhr_send", data=json.dumps([text]))
    assert sent.status == 204
    while True:
        body = await (await client.post(path + "/xhr")).text()
        if body.startswith("a["):
            if text in json.loads(body[1:]):
                return True
        elif body != "h\n":
            return False


# -- session ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/sockjs/000/a.b/xhr",
        "/sockjs/000/./xhr",
        "/sockjs/0.0/abc/xhr",
        "/sockjs/000//xhr",
        "/sockjs//abc/xhr",
        "/sockjs///xhr",
        "/sockjs/000/" + "s" * 17 + "/xhr",
    ],
)
async def test_bad_session_ids_are_404(make_endpoint: MakeEndpoint, path: str) -> None:
    client, endpoint = await make_endpoint(max_session_id_length=16)
    async with asyncio.timeout(TIMEOUT):
        response = await client.post(path)
        assert response.status == 404
    assert endpoint.session_count == 0


async def test_session_id_of_the_maximum_length_is_accepted(make_endpoint: MakeEndpoint) -> None:
    client, endpoint = await make_endpoint(max_session_id_length=16)
    async with asyncio.timeout(TIMEOUT):
        await open_session(client, "/sockjs/000/" + "s" * 16)
    assert endpoint.session_count == 1


# -- body size ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["xhr_send", "jsonp_send"])
async def test_body_over_the_limit_with_content_length_is_413(
    make_endpoint: MakeEndpoint, transport: str
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler, max_message_bytes=100)
    body = json.dumps(["x" * 200])
    async with asyncio.timeout(TIMEOUT):
        await open_session(client, "/sockjs/000/big")
        sent = await client.post(
            f"/sockjs/000/big/{transport}", data=body, headers={"Content-Type": "text/plain"}
        )
        assert sent.status == 413
        assert await sent.text() == "Payload too large."
        assert await echoes(client, "/sockjs/000/big", "small")
    assert [event[2] for event in handler.of_kind("message")] == ["small"]


async def test_body_at_the_limit_is_accepted(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(max_message_bytes=100)
    body = json.dumps(["x" * 96])
    assert len(body) == 100
    async with asyncio.timeout(TIMEOUT):
        await open_session(client, "/sockjs/000/edge")
        sent = await client.post("/sockjs/000/edge/xhr_send", data=body)
        assert sent.status == 204


@dataclass
class Counter:
    chunks: int = 0


async def endless(counter: Counter, chunks: int, size: int) -> AsyncIterator[bytes]:
    chunk = b"[" + b"x" * (size - 1)
    for _ in range(chunks):
        counter.chunks += 1
        yield chunk


async def test_chunked_body_over_the_limit_is_refused_without_reading_it(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    total = 1024  # 64 MiB in 64 KiB chunks, against the default 4 MiB cap
    counter = Counter()
    async with asyncio.timeout(TIMEOUT * 2):
        await open_session(client, "/sockjs/000/flood")
        sent = await client.post(
            "/sockjs/000/flood/xhr_send", data=endless(counter, total, 64 * 1024)
        )
        assert "Content-Length" not in sent.request_info.headers
        assert sent.status == 413
        assert await sent.text() == "Payload too large."
        sent.close()
        assert await echoes(client, "/sockjs/000/flood", "still here")
    # What was read is the cap plus what sat in buffers, not the whole body.
    assert counter.chunks < total // 3
    assert [event[2] for event in handler.of_kind("message")] == ["still here"]


async def test_one_mebibyte_message_round_trips(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    pattern = 'ab"\\c\u00e9\u4f60\n'
    message = (pattern * (1024 * 1024 // len(pattern) + 1))[: 1024 * 1024]
    async with asyncio.timeout(TIMEOUT * 2):
        await open_session(client, "/sockjs/000/mib")
        body = io.BytesIO(json.dumps([message], ensure_ascii=False).encode())
        sent = await client.post("/sockjs/000/mib/xhr_send", data=body)
        assert sent.status == 204
        await handler.wait_for("message")
        polled = await (await client.post("/sockjs/000/mib/xhr")).text()
    assert [event[2] for event in handler.of_kind("message")] == [message]
    assert json.loads(polled[1:]) == [message]


# -- body content ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (b'["\xff\xfe"]', "Broken JSON encoding."),
        (b'["\xed\xa0\x80"]', "Broken JSON encoding."),  # an encoded surrogate
        (b'["x"', "Broken JSON encoding."),
        (b"[1]", "Payload expected."),
        (b"{}", "Payload expected."),
        (b"null", "Payload expected."),
        (b'"x"', "Payload expected."),
        (b'["x", 1]', "Payload expected."),
        (b"", "Payload expected."),
    ],
)
async def test_malformed_bodies_are_500_and_harmless(
    make_endpoint: MakeEndpoint, body: bytes, answer: str
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        await open_session(client, "/sockjs/000/bad")
        sent = await client.post("/sockjs/000/bad/xhr_send", data=body)
        assert sent.status == 500
        assert await sent.text() == answer
        assert sent.headers["Content-Type"] == "text/plain; charset=UTF-8"
        assert await echoes(client, "/sockjs/000/bad", "ok")
    assert [event[2] for event in handler.of_kind("message")] == ["ok"]


@dataclass
class FuzzTarget:
    client: Client
    path: str
    examples: int = 0


@pytest.fixture
async def fuzz_target(make_endpoint: MakeEndpoint) -> FuzzTarget:
    """One server and one open session shared by every hypothesis example."""
    client, _ = await make_endpoint(max_message_bytes=256, disconnect_delay=60.0)
    await asyncio.wait_for(open_session(client, "/sockjs/000/fuzz"), TIMEOUT)
    return FuzzTarget(client, "/sockjs/000/fuzz")


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=512))
async def test_any_body_is_answered_and_the_session_survives(
    fuzz_target: FuzzTarget, body: bytes
) -> None:
    target = fuzz_target
    target.examples += 1
    async with asyncio.timeout(TIMEOUT):
        sent = await target.client.post(target.path + "/xhr_send", data=body)
        assert sent.status in (204, 500, 413)
        await sent.read()
        assert await echoes(target.client, target.path, f"marker {target.examples}")
