"""sockjs-client 1.6.1 and @stomp/stompjs in headless Chromium, through plain round-robin
nginx in front of three nodes (``deploy/nginx-round-robin.conf``): every transport forced
in turn, from a page on another origin. Consecutive requests of one session land on
different nodes (the access log says so), and the client cannot tell."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.balancer.cluster import Cluster, round_robin
from tests.clients.conftest import CLIENT_TRANSPORTS
from tests.stomp.drivers import BrowserStomp

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: sockjs-client's transports; the iframe forms of eventsource and xhr-polling make the
#: same requests as the plain ones, so nginx sees nothing new in them.
TRANSPORTS = [t for t in CLIENT_TRANSPORTS if t not in {"iframe-eventsource", "iframe-xhr-polling"}]
#: Transports whose receiving responses end at the response limit and are made again.
STREAMING = {"xhr-streaming", "eventsource", "iframe-htmlfile"}
TIMEOUT_MS = 20000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with round_robin(tmp_path_factory.mktemp("round-robin-browsers")) as started:
        yield started


class Probe:
    """One sockjs-client connection (``tests/clients/probe.html``) in a page, through
    nginx, with its own server-id segment so that the access log tells its requests apart."""

    def __init__(self, page: Any, cluster: Cluster) -> None:
        self.page = page
        self.cluster = cluster
        self.server = "t" + secrets.token_hex(4)

    async def open(self, transport: str, endpoint: str = "/echo") -> None:
        await self.page.goto(self.cluster.pages + "/probe.html")
        opened = await self.page.evaluate(
            "([u, t, s]) => openProbe('main', u, t, {server: s})",
            [self.cluster.url + endpoint, transport, self.server],
        )
        assert opened == transport

    async def start(self, transport: str, endpoint: str) -> None:
        """Create the connection without waiting for its open event."""
        await self.page.goto(self.cluster.pages + "/probe.html")
        await self.page.evaluate(
            "([u, t, s]) => { window.probes.main = new Probe(u, t, {server: s}); }",
            [self.cluster.url + endpoint, transport, self.server],
        )

    async def send_many(self, texts: list[str]) -> None:
        await self.page.evaluate("(ts) => ts.forEach((t) => probes.main.sock.send(t))", texts)

    async def messages(self, count: int) -> list[str]:
        found: list[str] = await self.page.evaluate(
            "([c, t]) => probes.main.messagesUntil(c, t)", [count, TIMEOUT_MS]
        )
        return found

    async def closed(self) -> dict[str, Any]:
        event: dict[str, Any] = await self.page.evaluate("(t) => probes.main.closed(t)", TIMEOUT_MS)
        return event

    async def heartbeats(self, count: int) -> int:
        seen: int = await self.page.evaluate(
            "([c, t]) => probes.main.until(() => probes.main.heartbeats >= c, t)"
            ".then(() => probes.main.heartbeats)",
            [count, TIMEOUT_MS],
        )
        return seen

    def requests(self) -> list[tuple[str, str, str]]:
        """(transport suffix, node, status) of every request of this connection so far."""
        return [
            request
            for (server, _), requests in self.cluster.routes().items()
            if server == self.server
            for request in requests
        ]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """The transport a test forces sockjs-client to use: every one of ``TRANSPORTS``."""
    name: str = request.param
    return name


@pytest.fixture
def probe(page: Any, cluster: Cluster) -> Probe:
    return Probe(page, cluster)


async def test_echo_and_a_thousand_ordered_messages(probe: Probe, transport: str) -> None:
    await probe.open(transport)
    await probe.send_many(["hello ✓ 漢字 😀"])
    assert await probe.messages(1) == ["hello ✓ 漢字 😀"]
    sent = [f"m{i}" for i in range(1000)]
    await probe.send_many(sent)
    assert await probe.messages(1000) == sent
    if transport != "websocket":  # one connection, one node: nothing to spread
        nodes = {node for _, node, _ in probe.requests()}
        assert len(nodes) >= 2, probe.requests()


async def test_server_close_reaches_the_client(probe: Probe, transport: str) -> None:
    await probe.start(transport, "/close")
    event = await probe.closed()
    assert (event["code"], event["reason"]) == (3000, "Go away!")


async def test_heartbeats_keep_coming_and_the_session_stays_usable(
    probe: Probe, transport: str
) -> None:
    await probe.open(transport)
    assert await probe.heartbeats(3) >= 3  # heartbeat_delay is 1 s on the nodes
    await probe.send_many(["after the heartbeats"])
    assert await probe.messages(1) == ["after the heartbeats"]


async def test_responses_recycle_at_the_limit_without_losing_a_message(
    probe: Probe, transport: str
) -> None:
    await probe.open(transport)
    sent = [f"{i:04d}" + "r" * 300 for i in range(60)]  # ~18 KiB, the limit is 4 KiB
    for start in range(0, len(sent), 5):  # a few at a time, spread over the responses
        await probe.send_many(sent[start : start + 5])
        assert await probe.messages(5) == sent[start : start + 5]
    if transport in STREAMING:
        suffix = {"xhr-streaming": "xhr_streaming", "iframe-htmlfile": "htmlfile"}
        receivers = [r for r in probe.requests() if r[0] == suffix.get(transport, transport)]
        assert len(receivers) >= 2, probe.requests()  # the first ended at the limit


# -- STOMP -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["xhr-polling", "xhr-streaming"])
async def test_stomp_through_round_robin(page: Any, cluster: Cluster, transport: str) -> None:
    await page.goto(cluster.pages + "/stomp_probe.html")
    stomp = BrowserStomp(page)
    url = cluster.url + "/stomp"
    names = ["a", "b"]
    for name in names:
        await stomp.run(cmd="connect", id=name, url=url, transport=transport)
        [connected] = await stomp.wait(name, "connected")
        assert (connected["version"], connected["transport"]) == ("1.2", transport)
    topic = "/topic/shout"
    for name in names:
        receipt = f"sub-{name}"
        await stomp.run(cmd="subscribe", id=name, sub="s", destination=topic, receipt=receipt)
        await stomp.wait(name, "receipt")
    await stomp.run(cmd="subscribe", id="a", sub="e", destination="/user/queue/echo")
    bodies = [f"echo {i}" for i in range(50)]
    for body in bodies:
        await stomp.run(cmd="publish", id="a", destination="/app/echo", body=body)
    await stomp.run(cmd="publish", id="b", destination="/app/shout", body="hello all")
    # a: every echo (in order) and the shout; b: the shout.
    got = await stomp.wait("a", "message", count=len(bodies) + 1)
    assert [e["body"] for e in got if e["sub"] == "e"] == bodies
    assert [e["body"] for e in got if e["sub"] == "s"] == ["HELLO ALL"]
    assert [e["body"] for e in await stomp.wait("b", "message")] == ["HELLO ALL"]
