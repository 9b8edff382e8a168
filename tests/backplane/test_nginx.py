"""The shipped load-balancer recipe, for real: Debian's nginx runs ``deploy/nginx.conf``
(only its ports changed, plus temp and log paths in a temp prefix) in front of two
``testserver --redis`` nodes, and sockjs-client (Node) uses it on the HTTP fallbacks; the
access log shows every request of a session reaching one node (no relay hop). The
round-robin recipe has its own tests in tests/balancer/."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.backplane.servers import Node, RedisServer
from tests.backplane.test_multinode import Clients, exchange
from tests.nginx import DEPLOY, nginx_binary, start_nginx, stop_nginx
from tests.stomp.drivers import require_clients

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEMPLATE = DEPLOY / "nginx.conf"
# Each access log line names the node each request went to.
LOG_FORMAT = "$uri $sockjs_server $upstream_addr $status"


@dataclass
class Balanced:
    url: str  # nginx
    nodes: list[Node]
    access_log: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def balanced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Balanced]:
    nginx_binary()
    require_clients()
    workdir = tmp_path_factory.mktemp("nginx")
    redis = RedisServer(workdir)
    redis.start()
    nodes: list[Node] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for index in range(2):
            nodes.append(await Node.start(redis.url, workdir / f"node{index}.log"))
        ports = [int(node.url.rsplit(":", 1)[1]) for node in nodes]
        nginx, port = start_nginx(TEMPLATE, workdir, ports, LOG_FORMAT)
        yield Balanced(f"http://127.0.0.1:{port}", nodes, workdir / "access.log")
    finally:
        stop_nginx(nginx)
        for node in nodes:
            await node.kill()
        redis.kill()


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[Clients]:
    started = await Clients.start()
    assert isinstance(started, Clients)
    try:
        yield started
    finally:
        await started.stop()


async def test_the_shipped_config_keeps_what_the_recipe_promises() -> None:
    text = TEMPLATE.read_text()
    for needed in (
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_buffering off;",
        "hash $sockjs_server consistent;",
        "hash $cookie_JSESSIONID consistent;",
    ):
        assert needed in text
    [timeout] = re.findall(r"proxy_read_timeout (\d+)s;", text)
    assert int(timeout) > 25  # above the default heartbeat_delay


@pytest.mark.parametrize("transport", ["xhr-streaming", "xhr-polling", "websocket"])
async def test_echo_through_nginx(balanced: Balanced, clients: Clients, transport: str) -> None:
    name = f"echo-{transport}"
    await clients.open(name, balanced.url + "/echo", transport)
    sent = [f"{transport} {i} ✓" for i in range(5)]
    for text in sent:
        await clients.send(name, text)
    assert await clients.messages(name, 5) == sent


@pytest.mark.parametrize("transport", ["xhr-streaming", "xhr-polling"])
async def test_broadcast_through_nginx_reaches_both_nodes(
    balanced: Balanced, clients: Clients, transport: str
) -> None:
    lb = f"lb-{transport}"
    direct = [f"direct{i}-{transport}" for i in range(2)]
    await clients.open(lb, balanced.url + "/broadcast", transport)
    for name, node in zip(direct, balanced.nodes, strict=True):
        await clients.open(name, node.url + "/broadcast", "websocket")
    await exchange(clients, [lb, *direct])


async def test_every_request_of_a_session_went_to_one_node(balanced: Balanced) -> None:
    """Read last, once the sessions above have made their requests."""
    routes: dict[str, set[str]] = defaultdict(set)
    for line in balanced.access_log.read_text().splitlines():
        uri, server_id, upstream, _ = line.split(" ")
        if re.search(r"/(xhr|xhr_send|xhr_streaming)$", uri):
            routes[server_id].add(upstream)
    assert routes  # the sessions above went through
    assert all(len(upstreams) == 1 for upstreams in routes.values()), routes
