"""The session directory's contract, on both backends (a MemoryHub, a real redis-server):
a claim owns a free key, answers the live owner of a taken one, and takes a dead owner's
key over; a release frees only the releasing owner's key; an unreachable Redis answers
BackplaneUnavailable at once."""

from __future__ import annotations

import asyncio

import pytest

from sockjs_gateway.backplane import Backplane, BackplaneUnavailable, Directory
from tests.backplane.conftest import FAST, Cluster
from tests.backplane.servers import RedisServer


def directory(node: Backplane) -> Directory:
    found: Directory | None = getattr(node, "directory", None)
    assert found is not None
    return found


async def eventually_free(node: Backplane, key: str) -> None:
    """Until ``key`` has no owner (Redis deletes released keys in its next renewal round,
    within a second): every 50 ms, for at most 5 s."""
    async with asyncio.timeout(5):
        while await directory(node).owner(key) is not None:  # noqa: ASYNC110 (Redis state)
            await asyncio.sleep(0.05)


async def test_the_first_claim_owns_and_later_claims_learn_the_owner(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    assert await directory(a).claim("/echo:s1") == a.node_id
    assert await directory(b).claim("/echo:s1") == a.node_id
    assert await directory(a).claim("/echo:s1") == a.node_id  # claiming again is harmless
    assert await directory(b).owner("/echo:s1") == a.node_id
    assert await directory(b).owner("/echo:other") is None


async def test_only_the_owner_releases(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    assert await directory(a).claim("/echo:s2") == a.node_id
    directory(b).release("/echo:s2")
    assert await directory(b).owner("/echo:s2") == a.node_id
    directory(a).release("/echo:s2")
    await eventually_free(b, "/echo:s2")
    assert await directory(b).claim("/echo:s2") == b.node_id


async def test_a_dead_owner_s_key_is_taken_over(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    assert await directory(a).claim("/echo:s3") == a.node_id
    await a.close()  # a node that leaves takes its liveness with it
    assert await directory(b).owner("/echo:s3") is None
    assert await directory(b).claim("/echo:s3") == b.node_id


async def test_an_unreachable_directory_fails_at_once(redis_server: RedisServer) -> None:
    from sockjs_gateway.backplane import RedisBackplane

    node = RedisBackplane(redis_server.url, **FAST)  # type: ignore[arg-type]
    try:
        await node.start()
        assert await directory(node).claim("/echo:s4") == node.node_id
        redis_server.kill()
        async with asyncio.timeout(5):
            while node.up:  # noqa: ASYNC110 (the link notices the lost connection)
                await asyncio.sleep(0.02)
        with pytest.raises(BackplaneUnavailable):
            await directory(node).claim("/echo:s4")
        with pytest.raises(BackplaneUnavailable):
            await directory(node).owner("/echo:s4")
    finally:
        await node.close()
