"""Several ``python -m sockjs_gateway testserver --redis URL`` processes sharing one real
redis-server, driven by real clients (sockjs-client and @stomp/stompjs in Node).

Exactly once, without timed assertions: after every client has received every message,
each client sends a marker, and the check runs once every client has every marker. A
node's echo of its own message, had it been delivered again, would have reached its
sessions before another node's marker: that marker was published after its sender saw
the message, so Redis handled the message first and delivers both to every node in that
order.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.backplane.servers import ANNOUNCE, ROOT, Node, RedisServer
from tests.clients.node import NodeClients
from tests.helpers import watch
from tests.stomp.drivers import NodeStomp, require_clients

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Clients(NodeClients):
    """sockjs-client connections in one Node process, waited on by predicate."""

    async def wait_until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        await watch(self._changed, check, timeout)

    def received(self, name: str, prefix: str) -> list[str]:
        return [
            d for d in (e["data"] for e in self.events(name, "message")) if d.startswith(prefix)
        ]


class Cluster:
    def __init__(self, redis: RedisServer, nodes: list[Node]) -> None:
        self.redis = redis
        self.nodes = nodes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    require_clients()
    workdir = tmp_path_factory.mktemp("multinode")
    redis = RedisServer(workdir)
    redis.start()
    nodes: list[Node] = []
    try:
        for index in range(3):
            nodes.append(await Node.start(redis.url, workdir / f"node{index}.log"))
        yield Cluster(redis, nodes)
    finally:
        for node in nodes:
            await node.kill()
        redis.kill()


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[Clients]:
    started = await Clients.start()  # a classmethod of NodeClients: makes a Clients
    assert isinstance(started, Clients)
    made = started
    try:
        yield made
    finally:
        await made.stop()


async def exchange(clients: Clients, names: list[str]) -> None:
    """Every connection broadcasts one message; every connection gets each exactly once."""
    tag = uuid.uuid4().hex[:8]

    def everyone_has_all(prefix: str) -> bool:
        return all(len(clients.received(n, prefix)) >= len(names) for n in names)

    for name in names:
        await clients.send(name, f"{tag}:{name}")
    await clients.wait_until(lambda: everyone_has_all(f"{tag}:"))
    for name in names:
        await clients.send(name, f"{tag}-end:{name}")
    await clients.wait_until(lambda: everyone_has_all(f"{tag}-end:"))
    for name in names:
        assert sorted(clients.received(name, f"{tag}:")) == sorted(f"{tag}:{n}" for n in names)


async def test_broadcasts_reach_every_session_on_every_node_exactly_once(
    cluster: Cluster, clients: Clients
) -> None:
    one, two, three = (node.url + "/broadcast" for node in cluster.nodes)
    await clients.open("ws1", one, "websocket")
    await clients.open("stream2", two, "xhr-streaming")
    await clients.open("poll3", three, "xhr-polling")
    await clients.open("ws3", three, "websocket")
    await exchange(clients, ["ws1", "stream2", "poll3", "ws3"])
    await exchange(clients, ["ws1", "stream2", "poll3", "ws3"])


async def test_stomp_topic_messages_cross_nodes_exactly_once(cluster: Cluster) -> None:
    stomp = await NodeStomp.start()
    try:
        names = {"a": ("websocket", 0), "b": ("xhr-streaming", 1), "c": ("xhr-polling", 2)}
        for name, (transport, index) in names.items():
            url = cluster.nodes[index].url + "/stomp"
            await stomp.run(cmd="connect", id=name, url=url, transport=transport)
            await stomp.wait(name, "connected")
            await stomp.run(
                cmd="subscribe", id=name, sub="s", destination="/topic/x", receipt=f"sub-{name}"
            )
            await stomp.wait(name, "receipt")
        for name in names:
            await stomp.run(cmd="publish", id=name, destination="/topic/x", body=f"from {name}")
        await stomp.wait_total(list(names), "message", 9)
        for name in names:
            await stomp.run(cmd="publish", id=name, destination="/topic/x", body=f"end {name}")
        await stomp.wait_total(list(names), "message", 18)
        for name in names:
            got = sorted(e["body"] for e in await stomp.seen(name, "message"))
            assert got == sorted([f"from {n}" for n in names] + [f"end {n}" for n in names])
    finally:
        await stomp.stop()


async def test_after_a_node_is_killed_the_others_keep_working(
    cluster: Cluster, clients: Clients, tmp_path: Path
) -> None:
    doomed = await Node.start(cluster.redis.url, tmp_path / "doomed.log")
    try:
        await clients.open("k1", cluster.nodes[0].url + "/broadcast", "websocket")
        await clients.open("k2", cluster.nodes[1].url + "/broadcast", "xhr-streaming")
        await clients.open("kd", doomed.url + "/broadcast", "websocket")
        await exchange(clients, ["k1", "k2", "kd"])
        await doomed.kill()  # SIGKILL: no goodbye to Redis or to its clients
        [closed] = await clients.wait("kd", "close")
        assert closed["code"] == 1006  # sockjs-client: the connection was lost
        await exchange(clients, ["k1", "k2"])
    finally:
        await doomed.kill()


async def test_serve_demo_chat_crosses_nodes(cluster: Cluster, tmp_path: Path) -> None:
    """``serve --redis`` clusters an app that knows nothing about backplanes."""
    processes = []
    try:
        urls = []
        for index in range(2):
            with (tmp_path / f"serve{index}.log").open("wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    *("-m", "sockjs_gateway", "serve", "--port", "0", "--redis", cluster.redis.url),
                    cwd=ROOT,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=stderr,
                )
            processes.append(process)
            assert process.stdout is not None
            match = ANNOUNCE.search(await asyncio.wait_for(process.stdout.readline(), 20))
            assert match is not None
            urls.append(f"http://127.0.0.1:{match.group(1).decode()}")
        joined = 'a["* someone joined via websocket"]'
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.ws_connect(urls[1] + "/chat/000/b/websocket") as second,
        ):
            assert await second.receive_str(timeout=5) == "o"
            assert await second.receive_str(timeout=5) == joined  # its own arrival
            async with http.ws_connect(urls[0] + "/chat/000/a/websocket") as first:
                assert await first.receive_str(timeout=5) == "o"
                assert await second.receive_str(timeout=5) == joined  # from the other node
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await asyncio.wait_for(process.wait(), 10)


async def test_redis_restart_traffic_resumes(cluster: Cluster, clients: Clients) -> None:
    names = ["r1", "r2", "r3"]
    for name, node in zip(names, cluster.nodes, strict=True):
        await clients.open(name, node.url + "/broadcast", "websocket")
    await exchange(clients, names)

    cluster.redis.kill()
    await clients.send("r1", "during:outage")
    await clients.wait_until(lambda: clients.received("r1", "during:") == ["during:outage"])
    cluster.redis.start()  # same port

    # Probe until every node hears every other (bounded: 60 probes, 0.25 s apart).
    def heard(name: str, sender: str) -> bool:
        return bool(clients.received(name, f"probe:{sender}:"))

    for attempt in range(60):
        for sender in names:
            if not all(heard(n, sender) for n in names if n != sender):
                await clients.send(sender, f"probe:{sender}:{attempt}")
        await asyncio.sleep(0.25)
        if all(heard(n, s) for s in names for n in names):
            break
    else:
        raise AssertionError("cross-node broadcasts did not resume after Redis restarted")
    await exchange(clients, names)
    for name in names:
        assert len(clients.received(name, "during:")) <= 1  # at most once across an outage
    for node in cluster.nodes:
        log = node.logged()
        assert log.count("lost Redis") == 1, log  # one line per state change, not per retry
        assert log.count("reconnected to Redis") == 1, log
