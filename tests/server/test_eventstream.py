"""The native EventSource endpoint on the wire: event format, resume from Last-Event-ID
or the query, heartbeats, and every refusal and bound it shares with SockJS endpoints."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientResponse, web

from sockjs_gateway import SockJSOptions, add_event_stream
from sockjs_gateway.history import Channels, HistoryLimits
from sockjs_gateway.server.eventstream import EventStream

TIMEOUT = 5.0
Event = dict[str, str]


def make_app(
    hub: Channels | None = None, **options: Any
) -> tuple[web.Application, Channels, EventStream]:
    app = web.Application()
    hub = hub or Channels(HistoryLimits())
    allow = options.pop("allow", None)
    stream = add_event_stream(
        app, channels=hub, prefix="/events", options=SockJSOptions(**options), allow=allow
    )
    return app, hub, stream


async def next_event(response: ClientResponse) -> Event:
    """The next event or comment, as its fields (a comment is ``{":": text}``)."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(TIMEOUT):
        while True:
            line = (await response.content.readline()).decode()
            if not line:
                raise EOFError("the stream ended")
            line = line.rstrip("\n")
            if not line:
                return fields
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name in fields:
                fields[name] += "\n" + value
            else:
                fields[name] = value


async def open_stream(client: Any, path: str, **headers: str) -> tuple[ClientResponse, Event]:
    response = await client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    recovery = await next_event(response)
    assert recovery["event"] == "recovery"
    return response, recovery


async def test_events_carry_epoch_offset_and_retry_and_resume_from_last_event_id(
    aiohttp_client: Any,
) -> None:
    app, hub, _ = make_app()
    client = await aiohttp_client(app)
    hub.publish("news", "one")
    hub.publish("news", "two\nlines")
    response, recovery = await open_stream(client, "/events/news?since=first")
    assert response.headers["Content-Type"] == "text/event-stream; charset=UTF-8"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert "no-store" in response.headers["Cache-Control"]
    epoch = json.loads(recovery["data"])["epoch"]
    assert json.loads(recovery["data"]) == {"channel": "news", "epoch": epoch, "recovered": True}
    one, two = await next_event(response), await next_event(response)
    assert one == {"id": f"{epoch}-1", "retry": "2000", "data": "one"}
    assert (two["id"], two["data"]) == (f"{epoch}-2", "two\nlines")
    hub.publish("news", "three")
    assert (await next_event(response))["data"] == "three"
    response.close()
    hub.publish("news", "four")
    again, recovery = await open_stream(client, "/events/news", **{"Last-Event-ID": one["id"]})
    assert json.loads(recovery["data"])["recovered"] is True
    assert [(await next_event(again))["data"] for _ in range(3)] == ["two\nlines", "three", "four"]
    again.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [("since=last", ["b"]), ("since=offset%3D2", ["b"]), ("since=next", []), ("", [])],
)
async def test_first_connect_from_the_query(
    aiohttp_client: Any, query: str, expected: list[str]
) -> None:
    app, hub, _ = make_app()
    client = await aiohttp_client(app)
    hub.publish("c", "a")
    hub.publish("c", "b")
    response, _ = await open_stream(client, f"/events/c?{query}")
    hub.publish("c", "live")
    got = [(await next_event(response))["data"] for _ in range(len(expected) + 1)]
    assert got == [*expected, "live"]
    response.close()


async def test_a_lost_epoch_or_a_too_old_id_is_reported(aiohttp_client: Any) -> None:
    app, hub, _ = make_app(Channels(HistoryLimits(max_messages=2)))
    client = await aiohttp_client(app)
    for text in ("1", "2", "3"):
        epoch = hub.publish("c", text).epoch
    for last_id in ("deadbeef-2", f"{epoch}-0"):  # another epoch; 1 is gone
        response, recovery = await open_stream(client, "/events/c", **{"Last-Event-ID": last_id})
        assert json.loads(recovery["data"]) == {"channel": "c", "epoch": epoch, "recovered": False}
        assert [(await next_event(response))["data"] for _ in range(2)] == ["2", "3"]
        response.close()
    same, _ = await open_stream(client, f"/events/c?last-event-id={epoch}-3")
    hub.publish("c", "4")
    assert (await next_event(same))["data"] == "4"
    same.close()


async def test_heartbeat_comments_in_silence(aiohttp_client: Any) -> None:
    app, _, _ = make_app(heartbeat_delay=0.05)
    client = await aiohttp_client(app)
    response, _ = await open_stream(client, "/events/quiet")
    assert await next_event(response) == {"": ""}
    response.close()


async def test_refused_origin_host_and_bad_start(aiohttp_client: Any) -> None:
    app, _, stream = make_app(
        allowed_origins=("https://ok.example",), allowed_hosts=("127.0.0.1", "localhost")
    )
    client = await aiohttp_client(app)
    evil = await client.get("/events/c", headers={"Origin": "https://evil.example"})
    assert (evil.status, await evil.text()) == (403, "Origin not allowed.")
    host = await client.get("/events/c", headers={"Host": "other.example"})
    assert (host.status, await host.text()) == (421, "Host not allowed.")
    bad = await client.get("/events/c?since=soon")
    assert (bad.status, await bad.text()) == (400, "Invalid since or last-event-id.")
    ok = await client.get("/events/c", headers={"Origin": "https://ok.example"})
    assert ok.status == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    ok.close()
    assert dict(stream.stats.refused) == {"origin": 1, "host": 1, "start": 1}


async def test_authenticate_and_allow(aiohttp_client: Any) -> None:
    def authenticate(request: web.Request) -> str:
        user = request.query.get("user")
        if user is None:
            raise web.HTTPForbidden(text="Who are you?")
        return user

    async def allow(principal: Any, channel: str) -> bool:
        return channel == f"user.{principal}"

    app, _, stream = make_app(authenticate=authenticate, allow=allow)
    client = await aiohttp_client(app)
    anonymous = await client.get("/events/user.ann")
    assert anonymous.status == 403
    other = await client.get("/events/user.bob?user=ann")
    assert (other.status, await other.text()) == (403, "Channel not allowed.")
    mine, _ = await open_stream(client, "/events/user.ann?user=ann")
    mine.close()
    assert dict(stream.stats.refused) == {"auth": 1, "channel": 1}


async def test_max_sessions_bounds_open_streams(aiohttp_client: Any) -> None:
    app, _, stream = make_app(max_sessions=1)
    client = await aiohttp_client(app)
    first, _ = await open_stream(client, "/events/c")
    second = await client.get("/events/c")
    assert (second.status, await second.text()) == (503, "Too many sessions.")
    first.close()
    async with asyncio.timeout(TIMEOUT):  # the server notices at its next write
        while stream.open_streams:
            stream.hub.publish("c", "anyone there?")
            await asyncio.sleep(0.02)
    third, _ = await open_stream(client, "/events/c")
    third.close()


@pytest.mark.parametrize("bound", ["max_queued_messages", "max_queued_bytes"])
async def test_a_slow_consumer_is_ended_and_resumes_from_history(
    aiohttp_client: Any, bound: str
) -> None:
    limits: dict[str, Any] = {"max_queued_messages": 3, "max_queued_bytes": 200}
    app, hub, stream = make_app(**{bound: limits[bound]})
    client = await aiohttp_client(app)
    response, _ = await open_stream(client, "/events/c")
    for number in range(10):  # in one loop step: nothing is written meanwhile
        hub.publish("c", f"message {number} " + "x" * 20)
    with pytest.raises(EOFError):
        await next_event(response)
    assert stream.stats.slow_consumer_closes == 1
    again, _ = await open_stream(client, "/events/c?since=first")
    assert (await next_event(again))["data"].startswith("message 0 ")
    again.close()


async def test_response_limit_ends_the_response(aiohttp_client: Any) -> None:
    app, hub, _ = make_app(response_limit=300)
    client = await aiohttp_client(app)
    response, _ = await open_stream(client, "/events/c")
    got = []
    for number in range(50):
        hub.publish("c", f"message {number}")
        try:
            got.append((await next_event(response))["data"])
        except EOFError:
            break
    assert 2 <= len(got) < 50


async def test_shutdown_ends_every_stream(aiohttp_client: Any) -> None:
    app, _, stream = make_app()
    client = await aiohttp_client(app)
    response, _ = await open_stream(client, "/events/c")
    await stream.shutdown()
    with pytest.raises(EOFError):
        await next_event(response)
    assert stream.open_streams == 0


async def test_unknown_paths(aiohttp_client: Any) -> None:
    app, _, _ = make_app()
    client = await aiohttp_client(app)
    assert (await client.get("/events/" + "x" * 201)).status == 404
    assert (await client.get("/events")).status == 404


async def test_a_live_stream_is_told_when_the_history_was_lost(aiohttp_client: Any) -> None:
    app, hub, _ = make_app(Channels(HistoryLimits(max_channels=1)))
    client = await aiohttp_client(app)
    response, _ = await open_stream(client, "/events/a")
    first = hub.publish("a", "one")
    assert (await next_event(response))["data"] == "one"
    hub.publish("b", "evicts a")
    again = hub.publish("a", "two")
    told = await next_event(response)
    assert told["event"] == "recovery"
    assert json.loads(told["data"]) == {"channel": "a", "epoch": again.epoch, "recovered": False}
    event = await next_event(response)
    assert (event["id"], event["data"]) == (f"{again.epoch}-1", "two")
    assert again.epoch != first.epoch
    response.close()
