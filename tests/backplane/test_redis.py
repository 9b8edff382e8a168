"""Faults of the Redis backend against a real redis-server: unreachable at start, killed
and restarted, silent (SIGSTOP). A node keeps its local delivery, reconnects with backoff,
resubscribes, logs once per state change, and counts what it had to drop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from sockjs_gateway.backplane import BackplaneState, BackplaneUnavailable, RedisBackplane
from tests.backplane.conftest import FAST
from tests.backplane.servers import RedisServer, free_port, require_redis
from tests.backplane.test_contract import Inbox

LOGGER = "sockjs_gateway.backplane"


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (checked every 10 ms, for at most ``timeout``)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def records(caplog: pytest.LogCaptureFixture, node: RedisBackplane, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == level and node.node_id in r.getMessage()
    ]


def inboxes(channel: str, *listeners: RedisBackplane) -> list[Inbox]:
    """An :class:`Inbox` per node, subscribed to ``channel`` on it."""
    made = [Inbox() for _ in listeners]
    for node, inbox in zip(listeners, made, strict=True):
        node.subscribe(channel, inbox)
    return made


@pytest_asyncio.fixture
async def nodes() -> AsyncIterator[list[RedisBackplane]]:
    made: list[RedisBackplane] = []
    try:
        yield made
    finally:
        for node in made:
            await node.close()


async def test_unreachable_redis_local_delivery_bounded_buffer_one_log_line(
    nodes: list[RedisBackplane], caplog: pytest.LogCaptureFixture
) -> None:
    require_redis()
    caplog.set_level(logging.INFO, LOGGER)
    url = f"redis://127.0.0.1:{free_port()}"  # nobody listens there
    node = RedisBackplane(url, max_pending=3, **{**FAST, "startup_wait": 0.1})  # type: ignore[arg-type]
    nodes.append(node)
    inbox = Inbox()
    node.subscribe("c", inbox)
    await node.start()  # returns: an unreachable bus is not an error
    await until(lambda: node.stats.failures >= 4)  # retried, with backoff
    assert node.state is BackplaneState.DOWN
    for i in range(5):
        node.publish("c", b"%d" % i)
    assert inbox.got == [b"0", b"1", b"2", b"3", b"4"]  # local sessions go on
    assert (node.pending, node.stats.dropped["overflow"]) == (3, 2)
    with pytest.raises(BackplaneUnavailable):
        await node.flush()
    [warning] = records(caplog, node, logging.WARNING)  # once, however many retries
    assert "cannot reach Redis" in warning
    await node.close()
    assert node.stats.dropped["closed"] == 3


async def test_redis_restart_nodes_reconnect_resubscribe_and_traffic_resumes(
    redis_server: RedisServer,
    nodes: list[RedisBackplane],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    a, b = (RedisBackplane(redis_server.url, **FAST) for _ in range(2))  # type: ignore[arg-type]
    nodes += [a, b]
    at_a, at_b = inboxes("c", a, b)
    for node in nodes:
        await node.start()
    a.publish("c", b"before")
    assert await at_b.wait(1) == [b"before"]

    redis_server.kill()
    await until(lambda: not a.up and not b.up)
    a.publish("c", b"during")
    assert at_a.got == [b"before", b"during"]  # local delivery never stops
    assert a.pending == 1

    redis_server.start()
    await until(lambda: a.up and b.up)
    for node in nodes:
        await node.flush()  # "during" has been sent (it reaches b if b was back in time)
    a.publish("c", b"after a")
    b.publish("c", b"after b")
    for _ in range(2):
        for node in nodes:
            await node.flush()
    # No order between two publishers: compare as sets of lines, each counted.
    assert sorted(at_a.got) == [b"after a", b"after b", b"before", b"during"]
    assert sorted(m for m in at_b.got if m != b"during") == [b"after a", b"after b", b"before"]
    assert at_b.got.count(b"during") <= 1  # at most once across an outage
    for node in nodes:
        assert node.stats.reconnects == 1
        assert len(records(caplog, node, logging.WARNING)) == 1  # "lost"
        infos = records(caplog, node, logging.INFO)
        assert [m.split(" Redis")[0] for m in infos] == [
            f"backplane: node {node.node_id} connected to",
            f"backplane: node {node.node_id} reconnected to",
        ]


async def test_subscriptions_made_while_down_are_made_once_redis_is_there(
    tmp_path: object, nodes: list[RedisBackplane], redis_server: RedisServer
) -> None:
    port = redis_server.port
    redis_server.kill()
    a = RedisBackplane(f"redis://127.0.0.1:{port}", **{**FAST, "startup_wait": 0.05})  # type: ignore[arg-type]
    b = RedisBackplane(f"redis://127.0.0.1:{port}", **FAST)  # type: ignore[arg-type]
    nodes += [a, b]
    await a.start()
    assert a.state is BackplaneState.DOWN
    inbox = Inbox()
    a.subscribe("late", inbox)
    redis_server.start()
    await b.start()
    await until(lambda: a.up)
    await a.flush()
    b.publish("late", b"hello")
    assert await inbox.wait(1) == [b"hello"]


async def test_a_silent_redis_is_noticed_by_ping_and_the_node_comes_back(
    redis_server: RedisServer, nodes: list[RedisBackplane]
) -> None:
    node = RedisBackplane(redis_server.url, **{**FAST, "ping_interval": 0.2, "timeout": 0.5})  # type: ignore[arg-type]
    nodes.append(node)
    await node.start()
    assert node.up
    redis_server.pause()
    try:
        await until(lambda: node.state is BackplaneState.DOWN)
    finally:
        redis_server.resume()
    await until(lambda: node.up)
    assert node.stats.reconnects == 1
    await node.flush()


async def test_clusters_with_different_prefixes_share_one_redis_apart(
    redis_server: RedisServer, nodes: list[RedisBackplane]
) -> None:
    one = RedisBackplane(redis_server.url, prefix="one:", **FAST)  # type: ignore[arg-type]
    two = RedisBackplane(redis_server.url, prefix="two:", **FAST)  # type: ignore[arg-type]
    peer = RedisBackplane(redis_server.url, prefix="two:", **FAST)  # type: ignore[arg-type]
    nodes += [one, two, peer]
    _, at_peer = inboxes("c", two, peer)
    for node in nodes:
        await node.start()
    one.publish("c", b"one")
    two.publish("c", b"two")
    for _ in range(2):
        for node in nodes:
            await node.flush()
    assert at_peer.got == [b"two"]


def test_bad_settings_are_refused() -> None:
    require_redis()
    with pytest.raises(ValueError, match="NUL"):
        RedisBackplane(node_id="a\0b")
    with pytest.raises(ValueError, match="backoff_max"):
        RedisBackplane(backoff_initial=2.0, backoff_max=1.0)
