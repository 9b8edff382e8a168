"""The bounds of relaying, each crossed (docs/security.md): relayed requests in progress
(``max_relays``), the bytes an owner has in flight to a relaying node (``relay_window``,
then the slow-consumer policy), a relayed body (``max_message_bytes``, checked by the
relaying node); and the switch that turns relaying off. In-process nodes on one
MemoryHub, each on a real aiohttp server."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import aiohttp
from aiohttp import web

from sockjs_gateway.metrics import collector
from sockjs_gateway.server.endpoint import ENDPOINTS
from sockjs_gateway.server.relay import RelayStats
from tests.backplane.relay_app import OPTIONS
from tests.backplane.relaying import close_of, memory_nodes, new_id, opened, poll, send, wait_for


async def test_past_max_relays_a_relayed_request_gets_503(http: aiohttp.ClientSession) -> None:
    async with memory_nodes(replace(OPTIONS, max_relays=2)) as nodes:
        a, b = nodes.urls
        ids = [new_id() for _ in range(3)]
        for sid in ids:
            assert await poll(http, a, sid) == "o\n"
        waiting = [asyncio.ensure_future(poll(http, b, sid)) for sid in ids[:2]]
        await asyncio.sleep(0.2)
        url = f"{b}/echo/000/{ids[2]}/xhr"
        async with http.post(url) as response:
            assert (response.status, await response.text()) == (503, "Too many relayed requests.")
        for sid in ids[:2]:
            assert (await send(http, a, sid, ["x"]))[0] == 204
        assert [await w for w in waiting] == ['a["x"]\n', 'a["x"]\n']


async def test_a_relayed_body_over_max_message_bytes_gets_413_from_the_relaying_node(
    http: aiohttp.ClientSession,
) -> None:
    async with memory_nodes(replace(OPTIONS, max_message_bytes=1000)) as nodes:
        a, b = nodes.urls
        sid = await opened(http, a)
        assert await send(http, b, sid, ["x" * 2000]) == (413, "Payload too large.")
        assert (await send(http, b, sid, ["x" * 500]))[0] == 204


async def test_a_relayed_stream_whose_client_does_not_read_is_a_slow_consumer(
    http: aiohttp.ClientSession,
) -> None:
    options = replace(
        OPTIONS,
        relay_window=16 * 1024,
        send_time_limit=0.5,
        response_limit=1 << 30,
        max_queued_bytes=1 << 30,
        max_queued_messages=1 << 20,
    )
    async with memory_nodes(options) as nodes:
        a, b = nodes.urls
        sid = await opened(http, a)
        port = int(b.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST /echo/000/{sid}/xhr_streaming HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        await writer.drain()  # and never read: the relaying node's writes get stuck
        chunk = "y" * 100_000
        for _ in range(100):  # 10 MB: more than loopback buffers and the window hold
            assert (await send(http, a, sid, [chunk]))[0] == 204
        # send_time_limit after the window filled
        assert await close_of(http, a, sid) == [4500, "Slow consumer"]

        async def cut_off() -> bool:  # the relaying node aborted its client's connection
            return reader.at_eof() or bool(await _drain(reader))

        await wait_for(cut_off)
        writer.close()


async def _drain(reader: asyncio.StreamReader) -> bool:
    """Read what is there; True once the connection ended."""
    try:
        while True:
            data = await asyncio.wait_for(reader.read(1 << 20), 0.05)
            if not data:
                return True
    except TimeoutError:
        return reader.at_eof()
    except ConnectionError:
        return True


async def test_jsonp_send_is_relayed_as_a_form(http: aiohttp.ClientSession) -> None:
    async with memory_nodes() as nodes:
        a, b = nodes.urls
        sid = await opened(http, a)
        url = f"{b}/echo/000/{sid}/jsonp_send"
        async with http.post(url, data={"d": json.dumps(["via form"])}) as response:
            assert (response.status, await response.text()) == (200, "ok")
        async with http.post(url, data=b"") as response:
            assert (response.status, await response.text()) == (500, "Payload expected.")
        assert await poll(http, b, sid, transport="jsonp") == '/**/cb("a[\\"via form\\"]");\r\n'


async def test_relay_off_keeps_sessions_on_the_node_they_reached(
    http: aiohttp.ClientSession,
) -> None:
    async with memory_nodes(replace(OPTIONS, relay=False)) as nodes:
        a, b = nodes.urls
        sid = await opened(http, a)
        assert (await send(http, b, sid, ["x"]))[0] == 404  # sticky routing expected
        assert await poll(http, b, sid) == "o\n"  # a second, separate session


async def test_relayed_requests_and_bytes_are_counted(http: aiohttp.ClientSession) -> None:
    async with memory_nodes() as nodes:
        a, b = nodes.urls
        sid = await opened(http, a)
        assert (await send(http, b, sid, ["counted"]))[0] == 204
        assert await poll(http, b, sid) == 'a["counted"]\n'
        owner, relaying = (_relay_stats(app) for app in nodes.apps)
        assert (relaying.requests, owner.requests) == (2, 0)
        assert relaying.bytes == owner.bytes > len('a["counted"]\n')
        assert relaying.failures == owner.failures == 0
        exposed = {
            sample.name: sample.value
            for family in collector(nodes.apps[1]).collect()
            for sample in family.samples
            if sample.labels.get("endpoint") == "/echo"
        }
        assert exposed["sockjs_relayed_requests_total"] == 2
        assert exposed["sockjs_relayed_bytes_total"] == relaying.bytes
        assert exposed["sockjs_relay_failures_total"] == 0


async def test_bytes_out_counts_a_relayed_poll_once_on_the_owner(
    http: aiohttp.ClientSession,
) -> None:
    """``sockjs_bytes_out_total`` counts a session's frames on the node that holds the
    session, whichever node's client read them, so a cluster's sum is what clients got."""
    async with memory_nodes() as nodes:
        a, b = nodes.urls
        sid = new_id()
        bodies = [await poll(http, a, sid)]
        assert (await send(http, b, sid, ["counted"]))[0] == 204
        bodies.append(await poll(http, b, sid))  # relayed
        busy = asyncio.ensure_future(poll(http, b, sid))  # relayed, then held
        await asyncio.sleep(0.1)
        bodies.append(await poll(http, b, sid))  # relayed: 2010
        assert (await send(http, a, sid, ["x"]))[0] == 204
        bodies.append(await busy)
        assert bodies[1:] == [
            'a["counted"]\n',
            'c[2010,"Another connection still open"]\n',
            'a["x"]\n',
        ]
        owner, relaying = (app[ENDPOINTS][0].stats for app in nodes.apps)
        assert (owner.bytes_out, relaying.bytes_out) == (sum(map(len, bodies)), 0)


def _relay_stats(app: web.Application) -> RelayStats:
    relay = app[ENDPOINTS][0].relay
    assert relay is not None
    return relay.stats


async def test_a_relayed_stream_longer_than_the_window_flows_on_acknowledgements(
    http: aiohttp.ClientSession,
) -> None:
    async with memory_nodes(replace(OPTIONS, relay_window=4096, response_limit=1 << 20)) as nodes:
        a, b = nodes.urls
        sid = await opened(http, a)
        expected = [f"{index:03d}" + "z" * 1000 for index in range(100)]  # 100 KB
        async with http.post(f"{b}/echo/000/{sid}/xhr_streaming") as response:
            assert (await response.content.readline()) == b"h" * 2048 + b"\n"
            for message in expected:
                assert (await send(http, a, sid, [message]))[0] == 204
            received: list[str] = []
            while len(received) < len(expected):  # bounded: the session's 100 messages
                line = await asyncio.wait_for(response.content.readline(), 10)
                assert line.startswith(b"a["), line
                received += json.loads(line[1:])
        assert received == expected
