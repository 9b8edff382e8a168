"""Fixtures of the backplane tests: a real redis-server per test, an HTTP client, and
:class:`Cluster`, which makes the nodes of one bus for whichever backend a test is
parametrized with (the contract suite runs every test on both)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import nullcontext
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from sockjs_gateway.backplane import Backplane, MemoryBackplane, MemoryHub
from tests.backplane.servers import RedisServer

#: Short timeouts so that fault tests notice trouble fast; the defaults are for production.
FAST = {
    "timeout": 2.0,
    "ping_interval": 0.5,
    "backoff_initial": 0.02,
    "backoff_max": 0.2,
    "startup_wait": 2.0,
}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path) as server:
        yield server


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client for the relay tests' raw SockJS requests; 20 s bounds a hung one."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


class Cluster:
    """Makes nodes (backplanes) that share one bus: a :class:`MemoryHub`, or a Redis."""

    def __init__(self, backend: str, redis: RedisServer | None) -> None:
        self.backend = backend
        self.redis = redis
        self.hub = MemoryHub()
        self.nodes: list[Backplane] = []

    async def node(self, *, start: bool = True, **options: object) -> Backplane:
        """A new node, started unless ``start=False``; Redis options (see ``FAST``) may be
        overridden."""
        backplane: Backplane
        if self.redis is None:
            backplane = MemoryBackplane(self.hub)
        else:
            from sockjs_gateway.backplane import RedisBackplane

            backplane = RedisBackplane(self.redis.url, **{**FAST, **options})  # type: ignore[arg-type]
        self.nodes.append(backplane)
        if start:
            await backplane.start()
            assert backplane.up
        return backplane

    async def settle(self) -> None:
        """Every node's publishes and subscriptions are on the bus, and everything the bus
        sent is delivered: two rounds of flush (the second carries what the first sent)."""
        for _ in range(2):
            for node in self.nodes:
                if node.up:
                    await node.flush()

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()


@pytest_asyncio.fixture(params=["memory", "redis"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    with RedisServer.running(tmp_path) if request.param == "redis" else nullcontext() as redis:
        made = Cluster(request.param, redis)
        try:
            yield made
        finally:
            await made.close()
