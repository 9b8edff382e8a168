"""xhr-polling: ``POST .../xhr`` receives, ``POST .../xhr_send`` sends."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from sockjs_gateway import Session
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import NO_CACHE, TIMEOUT, json_between


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


# -- headers -----------------------------------------------------------------------------


def messages_of(body: str) -> list[str]:
    """The messages of one ``a[...]\\n`` xhr frame."""
    decoded = json_between(body, "a", "\n")
    assert isinstance(decoded, list)
    return decoded


async def test_poll_headers_without_origin_grant_any_origin(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        response = await client.post("/sockjs/000/h1/xhr")
        assert await response.text() == "o\n"
    assert response.headers["Content-Type"] == "application/javascript; charset=UTF-8"
    assert response.headers["Cache-Control"] == NO_CACHE
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_poll_and_send_echo_the_origin_with_credentials(
    make_endpoint: MakeEndpoint,
) -> None:
    client, _ = await make_endpoint()
    origin = {"Origin": "https://app.example"}
    async with asyncio.timeout(TIMEOUT):
        polled = await client.post("/sockjs/000/h2/xhr", headers=origin)
        assert await polled.text() == "o\n"
        sent = await client.post("/sockjs/000/h2/xhr_send", data='["x"]', headers=origin)
        assert sent.status == 204
    for response in (polled, sent):
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Cache-Control"] == NO_CACHE


async def test_xhr_send_answers_204_as_plain_text(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        await (await client.post("/sockjs/000/s204/xhr")).read()
        sent = await client.post("/sockjs/000/s204/xhr_send", data='["x"]')
        assert sent.status == 204
        assert await sent.read() == b""
    assert sent.headers["Content-Type"] == "text/plain; charset=UTF-8"


# -- framing -----------------------------------------------------------------------------


async def test_messages_queued_between_polls_come_back_merged_in_order(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/q/xhr")).text() == "o\n"
        for body in ('["a"]', '["b","c"]', '["d"]'):
            sent = await client.post("/sockjs/000/q/xhr_send", data=body)
            assert sent.status == 204
        await handler.wait_for("message", 4)
        polled = await client.post("/sockjs/000/q/xhr")
        assert await polled.text() == 'a["a","b","c","d"]\n'


async def wait_attached(session: Session) -> None:
    """Wait until a receiving request is attached to ``session`` (bounded by the caller)."""
    # The server offers no event for "a poll is waiting"; poll the session briefly.
    while session.receiver is None:  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def test_each_poll_carries_exactly_one_frame(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/one/xhr")).text() == "o\n"
        session = handler.sessions[0]
        poll = asyncio.ensure_future(client.post("/sockjs/000/one/xhr"))
        await wait_attached(session)
        # Messages and the close frame are queued together, but are two frames: two polls.
        session.send("last words")
        session.close(3000, "Go away!")
        assert await (await poll).text() == 'a["last words"]\n'
        polled = await client.post("/sockjs/000/one/xhr")
        assert await polled.text() == 'c[3000,"Go away!"]\n'


async def test_messages_sent_before_close_reach_the_next_poll(
    make_endpoint: MakeEndpoint,
) -> None:
    """``Session.close``: "queued messages, then c[code,"reason"], reach the client" --
    also when no poll was waiting at the moment of the close."""
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/bye/xhr")).text() == "o\n"
        session = handler.sessions[0]
        session.send("last words")
        session.close(3000, "Go away!")
        assert await (await client.post("/sockjs/000/bye/xhr")).text() == 'a["last words"]\n'
        polled = await client.post("/sockjs/000/bye/xhr")
        assert await polled.text() == 'c[3000,"Go away!"]\n'


@dataclass
class GreetingHandler(RecordingHandler):
    """Sends a welcome message as soon as the session opens."""

    async def on_open(self, session: Session) -> None:
        await super().on_open(session)
        session.send("welcome")


async def test_open_frame_comes_alone_before_messages_sent_on_open(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = GreetingHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/w/xhr")).text() == "o\n"
        await handler.wait_for("open")
        assert await (await client.post("/sockjs/000/w/xhr")).text() == 'a["welcome"]\n'


# -- a poll that comes while the handler works ---------------------------------------------
# Clients send and poll at once, so a poll often comes while the session's handler still
# has the message it was sent with. The poll lets the handler go first, then takes its
# answer, or waits for one as any poll does.


@dataclass
class GatedHandler(RecordingHandler):
    """Echoes a message once ``gate`` opens; ``"quiet"`` gets no answer."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_message(self, session: Session, message: str) -> None:
        self._record("message", session, message)
        await self.gate.wait()
        if message != "quiet":
            session.send(message)


async def test_polls_sent_with_their_message_each_get_its_echo(
    make_endpoint: MakeEndpoint,
) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/race/xhr")).text() == "o\n"
        for i in range(20):
            sent, polled = await asyncio.gather(
                client.post("/sockjs/000/race/xhr_send", data=json.dumps([f"m{i}"])),
                client.post("/sockjs/000/race/xhr"),
            )
            assert sent.status == 204
            assert await polled.text() == f'a["m{i}"]\n'


async def test_a_poll_waits_for_a_handler_that_answers_later(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = GatedHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/slow/xhr")).text() == "o\n"
        session = handler.sessions[0]
        sent = await client.post("/sockjs/000/slow/xhr_send", data='["hi"]')
        assert sent.status == 204  # taken, though the handler has not answered
        await handler.wait_for("message")
        poll = asyncio.ensure_future(client.post("/sockjs/000/slow/xhr"))
        await wait_attached(session)
        assert not poll.done()
        # A second poll meanwhile is refused, as always while one is held.
        second = await client.post("/sockjs/000/slow/xhr")
        assert await second.text() == 'c[2010,"Another connection still open"]\n'
        handler.gate.set()
        assert await (await poll).text() == 'a["hi"]\n'


async def test_a_poll_beside_a_silent_handler_is_held_for_the_next_message(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = GatedHandler()
    handler.gate.set()
    client, endpoint = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/q2/xhr")).text() == "o\n"
        session = handler.sessions[0]
        # Sent together: the poll comes while the handler works, or after it; either way
        # the handler's silence leaves it held.
        sending = asyncio.ensure_future(client.post("/sockjs/000/q2/xhr_send", data='["quiet"]'))
        poll = asyncio.ensure_future(client.post("/sockjs/000/q2/xhr"))
        sent = await sending
        assert sent.status == 204
        await wait_attached(session)
        assert endpoint.broadcast("later") == 1
        assert await (await poll).text() == 'a["later"]\n'


# -- sending to sessions that are not there ------------------------------------------------


async def test_xhr_send_to_unknown_session_is_404(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        sent = await client.post("/sockjs/000/nobody/xhr_send", data='["x"]')
        assert sent.status == 404
    assert endpoint.session_count == 0
    assert handler.events == []


async def test_xhr_send_after_the_session_closed_is_404(make_endpoint: MakeEndpoint) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/gone/xhr")).text() == "o\n"
        handler.sessions[0].close()
        sent = await client.post("/sockjs/000/gone/xhr_send", data='["too late"]')
        assert sent.status == 404
        await handler.wait_for("close")
    assert handler.of_kind("message") == []


# -- text --------------------------------------------------------------------------------

ROUND_TRIP = [
    "你好世界 日本語 한국어",
    "😀🎉 astral",
    'quote " backslash \\ slash /',
    "controls \x00\x01\x1f\x7f",
    "separators \u2028\u2029 joiners \u200c\u200d\u2060 specials \ufff0\uffff",
    "</script><!--",
    "",
]
#: Code points the SockJS protocol requires the server to send escaped.
MUST_BE_ESCAPED = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")


@pytest.mark.parametrize("ensure_ascii", [True, False])
async def test_text_round_trips_through_send_and_poll(
    make_endpoint: MakeEndpoint, ensure_ascii: bool
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    body = json.dumps(ROUND_TRIP, ensure_ascii=ensure_ascii)
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/u/xhr")).text() == "o\n"
        sent = await client.post("/sockjs/000/u/xhr_send", data=body.encode())
        assert sent.status == 204
        await handler.wait_for("message", len(ROUND_TRIP))
        polled = await (await client.post("/sockjs/000/u/xhr")).text()
    assert [event[2] for event in handler.of_kind("message")] == ROUND_TRIP
    assert messages_of(polled) == ROUND_TRIP
    assert MUST_BE_ESCAPED.search(polled[:-1]) is None


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
async def test_xhr_send_ignores_the_content_type(
    make_endpoint: MakeEndpoint, content_type: str | None
) -> None:
    handler = RecordingHandler()
    client, _ = await make_endpoint(handler)
    if content_type is None:
        options: dict[str, Any] = {"skip_auto_headers": ["Content-Type"]}
    else:
        options = {"headers": {"Content-Type": content_type}}
    async with asyncio.timeout(TIMEOUT):
        assert await (await client.post("/sockjs/000/ct/xhr")).text() == "o\n"
        sent = await client.post("/sockjs/000/ct/xhr_send", data=b'["typed"]', **options)
        assert sent.status == 204
        assert await (await client.post("/sockjs/000/ct/xhr")).text() == 'a["typed"]\n'
