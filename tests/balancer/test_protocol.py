"""The SockJS protocol's behaviours through plain round-robin nginx in front of three nodes
(``deploy/nginx-round-robin.conf``), each check also run directly against one node: the
same answers whichever node takes each request.

Every transport goes through :class:`tests.sockjs_clients.SockJSClient`, the client the
contract suites use, pointed at a base URL. The HTTP-level checks (status codes, 2010,
heartbeats, response-limit recycling, 1002, expiry) use raw requests, so each of a
session's requests is its own HTTP request and nginx sends consecutive ones to different
nodes; the last test reads nginx's access log to show they did.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
import pytest
import pytest_asyncio

from sockjs_gateway.protocol.frames import BROKEN_JSON, PAYLOAD_EXPECTED
from tests import sockjs_clients
from tests.balancer.cluster import HEARTBEAT, RESPONSE_LIMIT, Cluster, round_robin
from tests.sockjs_clients import SockJSClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: SockJSClient's transports but the deflate and raw WebSocket variants: like plain
#: websocket, one connection to one node, so nginx has nothing more to spread.
TRANSPORTS = [
    t for t in sockjs_clients.TRANSPORTS if t not in {"websocket-deflate", "raw-websocket"}
]
HTTP_RECEIVERS = [t for t in TRANSPORTS if t != "websocket"]
ROUTES = ["direct", "round-robin"]
TIMEOUT = 10.0
XHR_PRELUDE = b"h" * 2048 + b"\n"


class BaseURL:
    """The part of aiohttp's ``TestClient`` that :class:`SockJSClient` uses, for a server
    at ``base`` (a real process, or nginx)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.http.post(self.base + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(self.base + path, **kwargs)

    def ws_connect(self, path: str, **kwargs: Any) -> Any:
        return self.http.ws_connect(self.base + path, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with round_robin(tmp_path_factory.mktemp("round-robin")) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # One connection per request: keep-alive would pin nothing here (nginx balances each
    # request), but it keeps the direct route honest about fresh connections too.
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT * 3)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session


@pytest.fixture(params=ROUTES)
def base(request: pytest.FixtureRequest, cluster: Cluster) -> str:
    """The URL the test talks to: one node directly, or nginx in front of all three."""
    return cluster.nodes[0].url if request.param == "direct" else cluster.url


@asynccontextmanager
async def opened(
    http: aiohttp.ClientSession, base: str, transport: str, prefix: str
) -> AsyncIterator[SockJSClient]:
    """A session on ``transport``, past its open frame; disconnected on the way out, which
    closes its open request too."""
    sockjs = SockJSClient(cast(Any, BaseURL(http, base)), transport, prefix=prefix)
    await sockjs.open()
    try:
        yield sockjs
    finally:
        await sockjs.disconnect()


def session_url(base: str, prefix: str = "/echo") -> str:
    return f"{base}{prefix}/000/{secrets.token_hex(6)}"


async def post(http: aiohttp.ClientSession, url: str, data: str = "") -> tuple[int, str]:
    async with http.post(url, data=data) as response:
        return response.status, await response.text()


# -- every transport, through SockJSClient -----------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_echo_keeps_the_order_of_separate_sends(
    http: aiohttp.ClientSession, base: str, transport: str
) -> None:
    async with opened(http, base, transport, "/echo") as sockjs:
        sent = [f"{transport} #{i} ✓" for i in range(12)]
        for text in sent:  # one request each: round-robin spreads them over the nodes
            assert await sockjs.send(text) in (101, 200, 204)  # jsonp_send: 200 ok
        received: list[str] = []
        while len(received) < len(sent):
            frame = await sockjs.next_frame(TIMEOUT)
            assert frame.startswith("a"), frame
            received += json.loads(frame[1:])
        assert received == sent


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_close_reaches_the_client(
    http: aiohttp.ClientSession, base: str, transport: str
) -> None:
    async with opened(http, base, transport, "/close") as sockjs:
        assert await sockjs.messages_until_close(TIMEOUT) == ([], [3000, "Go away!"])


# -- the HTTP transports' own rules, request by request ----------------------------------


async def test_a_closed_session_replays_its_close_frame(
    http: aiohttp.ClientSession, base: str
) -> None:
    url = session_url(base, "/close")
    assert await post(http, url + "/xhr") == (200, "o\n")
    for _ in range(3):  # whichever node each poll reaches
        assert await post(http, url + "/xhr") == (200, 'c[3000,"Go away!"]\n')


async def test_send_verdicts_are_the_owners(http: aiohttp.ClientSession, base: str) -> None:
    url = session_url(base)
    assert (await post(http, url + "/xhr_send", '["nobody"]'))[0] == 404
    assert await post(http, url + "/xhr") == (200, "o\n")
    assert await post(http, url + "/xhr_send", "[") == (500, BROKEN_JSON)
    assert await post(http, url + "/xhr_send", "") == (500, PAYLOAD_EXPECTED)
    assert await post(http, url + "/xhr_send", '["fine"]') == (204, "")
    assert await post(http, url + "/xhr") == (200, 'a["fine"]\n')


async def attached(http: aiohttp.ClientSession, url: str, suffix: str) -> aiohttp.ClientResponse:
    """A streaming receiver on ``url``, returned once its first heartbeat proves the
    owner has it attached."""
    if suffix == "xhr_streaming":
        stream = await http.post(url + "/xhr_streaming")
        assert await stream.content.readline() == XHR_PRELUDE
        assert await asyncio.wait_for(stream.content.readline(), TIMEOUT) == b"h\n"
    else:
        stream = await http.get(url + "/eventsource")
        assert await stream.content.readline() == b"\r\n"
        assert await asyncio.wait_for(stream.content.readline(), TIMEOUT) == b"data: h\r\n"
    return stream


@pytest.mark.parametrize("suffix", ["xhr_streaming", "eventsource"])
async def test_a_second_receiver_gets_2010(
    http: aiohttp.ClientSession, base: str, suffix: str
) -> None:
    url = session_url(base)
    assert await post(http, url + "/xhr") == (200, "o\n")
    first = await attached(http, url, suffix)
    try:
        second = await post(http, url + "/xhr")
        assert second == (200, 'c[2010,"Another connection still open"]\n')
    finally:
        first.close()


async def test_a_waiting_poll_gets_a_heartbeat(http: aiohttp.ClientSession, base: str) -> None:
    url = session_url(base)
    assert await post(http, url + "/xhr") == (200, "o\n")
    # Nothing to send: the poll waits heartbeat_delay (HEARTBEAT s), then gets "h".
    assert await asyncio.wait_for(post(http, url + "/xhr"), HEARTBEAT + TIMEOUT) == (200, "h\n")


async def test_streams_recycle_at_the_response_limit_and_lose_nothing(
    http: aiohttp.ClientSession, base: str
) -> None:
    url = session_url(base)
    assert await post(http, url + "/xhr") == (200, "o\n")
    sent = [f"{i:04d}" + "x" * 200 for i in range(60)]  # ~12 KiB: three limits' worth
    assert sum(len(text) for text in sent) > 2 * RESPONSE_LIMIT

    async def send_all() -> None:
        for text in sent:  # one at a time, while the streams below are open
            assert (await post(http, url + "/xhr_send", json.dumps([text])))[0] == 204

    sender = asyncio.ensure_future(send_all())
    received: list[str] = []
    streams = 0
    try:
        while len(received) < len(sent) and streams < 20:
            streams += 1
            async with http.post(url + "/xhr_streaming") as stream:
                assert await stream.content.readline() == XHR_PRELUDE
                while line := await asyncio.wait_for(stream.content.readline(), TIMEOUT):
                    if line.startswith(b"a"):
                        received += json.loads(line[1:])
                    if len(received) == len(sent):
                        break
        await asyncio.wait_for(sender, TIMEOUT)
    finally:
        sender.cancel()
    assert received == sent
    assert streams >= 2  # each stream ended once it had written RESPONSE_LIMIT bytes


async def test_an_interrupted_receiver_ends_the_session_with_1002(
    http: aiohttp.ClientSession, base: str
) -> None:
    url = session_url(base)
    assert await post(http, url + "/xhr") == (200, "o\n")
    stream = await attached(http, url, "xhr_streaming")
    stream.close()  # the client goes away mid-stream
    async with asyncio.timeout(TIMEOUT):
        while True:  # the drop reaches the owner a moment later
            answer = await post(http, url + "/xhr")
            if answer != (200, 'c[2010,"Another connection still open"]\n'):
                break
            await asyncio.sleep(0.1)
    assert answer == (200, 'c[1002,"Connection interrupted"]\n')


async def test_an_unpolled_session_expires_after_the_disconnect_delay(
    http: aiohttp.ClientSession, base: str
) -> None:
    url = session_url(base)
    assert await post(http, url + "/xhr") == (200, "o\n")
    async with asyncio.timeout(TIMEOUT):
        while (await post(http, url + "/xhr_send", '["still there?"]'))[0] == 204:  # noqa: ASYNC110
            await asyncio.sleep(0.5)  # another process decides: poll it
    assert (await post(http, url + "/xhr_send", '["gone"]'))[0] == 404
    assert await post(http, url + "/xhr") == (200, "o\n")  # the id opens a new session


# -- where the requests went (last: every test above has made its requests) --------------


async def test_round_robin_spread_each_session_over_several_nodes(cluster: Cluster) -> None:
    routes = cluster.routes()
    busy = {key: requests for key, requests in routes.items() if len(requests) >= 3}
    assert busy, routes
    for key, requests in busy.items():
        upstreams = {upstream for _, upstream, _ in requests}
        assert len(upstreams) >= 2, (key, requests)
    every = {upstream for requests in busy.values() for _, upstream, _ in requests}
    assert len(every) == len(cluster.nodes)
