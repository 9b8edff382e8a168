"""Three ``testserver --redis`` nodes behind nginx running ``deploy/nginx-round-robin.conf``
(no hash, no cookie), and a separate origin serving the browser probe pages: what the
round-robin tests talk to. The nodes relay each request of a session to the node that owns
it, so whichever node nginx picks must answer as the owner would."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.backplane.servers import Node, RedisServer
from tests.clients.app import CLIENT_URL
from tests.clients.conftest import require, start
from tests.nginx import DEPLOY, nginx_binary, start_nginx, stop_nginx
from tests.stomp.drivers import add_probe_routes, require_clients

__all__ = ["RECIPE", "HEARTBEAT", "RESPONSE_LIMIT", "Cluster", "round_robin", "SESSION_URL"]

RECIPE = DEPLOY / "nginx-round-robin.conf"
#: Short, so that tests see heartbeats and expiry without waiting 25 s or 5 s.
HEARTBEAT = 1.0
DISCONNECT_DELAY = 2.0
#: Small, so that a few messages make streaming responses recycle.
RESPONSE_LIMIT = 4096
LOG_FORMAT = "$request_uri $upstream_addr $status"
#: <prefix>/<server-id>/<session-id>/<transport>[?query]
SESSION_URL = re.compile(
    r"^/(?P<prefix>[\w-]+)/(?P<server>[^/.]+)/(?P<session>[^/.]+)/(?P<kind>\w+)"
)


@dataclass
class Cluster:
    url: str  # nginx
    nodes: list[Node]
    redis: RedisServer
    access_log: Path
    pages: str  # the other origin, serving the probe pages and the client bundles

    def routes(self) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
        """Every session request nginx logged so far: (server-id, session-id) -> a list of
        (transport suffix, upstream address, status)."""
        found: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
        for line in self.access_log.read_text().splitlines():
            uri, upstream, status = line.split(" ")
            match = SESSION_URL.match(uri)
            if match is not None:
                key = (match["server"], match["session"])
                found[key].append((match["kind"], upstream, status))
        return found

    def upstreams_of_server(self, server: str) -> set[str]:
        """The nodes that served requests of sessions with this server-id segment."""
        return {
            upstream
            for (server_id, _), requests in self.routes().items()
            if server_id == server
            for _, upstream, _ in requests
        }


def page_app() -> web.Application:
    """The probe pages (sockjs-client and STOMP) and their scripts, on their own origin."""
    app = web.Application()
    add_probe_routes(app)
    return app


@asynccontextmanager
async def round_robin(workdir: Path, count: int = 3) -> AsyncIterator[Cluster]:
    """Redis, ``count`` nodes, the page origin and nginx; everything stopped at the end."""
    nginx_binary()
    require_clients()
    redis = RedisServer(workdir)
    redis.start()
    nodes: list[Node] = []
    nginx: subprocess.Popen[bytes] | None = None
    pages, pages_url = await start(page_app())
    try:
        flags = (
            *("--heartbeat-delay", str(HEARTBEAT), "--disconnect-delay", str(DISCONNECT_DELAY)),
            *("--response-limit", str(RESPONSE_LIMIT), "--sockjs-url", pages_url + CLIENT_URL),
        )
        for index in range(count):
            nodes.append(await Node.start(redis.url, workdir / f"node{index}.log", *flags))
        ports = [int(node.url.rsplit(":", 1)[1]) for node in nodes]
        nginx, port = start_nginx(RECIPE, workdir, ports, LOG_FORMAT)
        yield Cluster(f"http://127.0.0.1:{port}", nodes, redis, workdir / "access.log", pages_url)
    finally:
        stop_nginx(nginx)
        for node in nodes:
            await node.kill()
        await pages.cleanup()
        redis.kill()


def require_redis_extra() -> None:
    """The nodes need the redis package (the ``redis`` extra)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        require(False, "redis (PyPI, extra 'redis')")
