"""The one contract suite of the ``Backplane`` interface (STYLE #8): every test runs on
every backend, as nodes of one bus (a ``MemoryHub``, or a real redis-server).

Exactly-once checks never wait for time: ``cluster.settle()`` is a barrier after which
every message published before it has been delivered everywhere it will ever be."""

from __future__ import annotations

import asyncio

import pytest

from sockjs_gateway.backplane import Backplane, BackplaneState, BackplaneUnavailable
from tests.backplane.conftest import Cluster
from tests.helpers import watch


class Inbox:
    """A subscriber that records what it gets."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self._changed = asyncio.Event()

    def __call__(self, payload: bytes) -> None:
        self.got.append(payload)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 5.0) -> list[bytes]:
        await watch(self._changed, lambda: len(self.got) >= count, timeout)
        return self.got


async def test_local_subscribers_get_it_before_publish_returns(cluster: Cluster) -> None:
    node = await cluster.node()
    inbox = Inbox()
    node.subscribe("c", inbox)
    node.publish("c", b"now")
    assert inbox.got == [b"now"]


async def test_every_subscriber_on_every_node_gets_it_exactly_once(cluster: Cluster) -> None:
    nodes = [await cluster.node() for _ in range(3)]
    inboxes = [[Inbox(), Inbox()] for _ in nodes]
    for node, pair in zip(nodes, inboxes, strict=True):
        for inbox in pair:
            node.subscribe("room", inbox)
    await cluster.settle()
    for index, node in enumerate(nodes):
        node.publish("room", b"from %d" % index)
    await cluster.settle()
    for pair in inboxes:
        for inbox in pair:
            assert sorted(inbox.got) == [b"from 0", b"from 1", b"from 2"]


async def test_one_node_s_messages_arrive_in_order(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    inbox = Inbox()
    b.subscribe("seq", inbox)
    await cluster.settle()
    sent = [b"%d" % i for i in range(200)]
    for payload in sent:
        a.publish("seq", payload)
    assert await inbox.wait(200) == sent


async def test_channels_are_separate(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    red, blue = Inbox(), Inbox()
    b.subscribe("red", red)
    b.subscribe("blue", blue)
    await cluster.settle()
    a.publish("red", b"r")
    a.publish("green", b"g")  # nobody listens: goes nowhere, harms nothing
    await cluster.settle()
    assert (red.got, blue.got) == ([b"r"], [])


@pytest.mark.parametrize(
    "payload", [b"", b"\x00", b"a\x00b\nc", bytes(range(256)), "é😀".encode(), b"x" * 70_000]
)
async def test_payloads_arrive_byte_for_byte(cluster: Cluster, payload: bytes) -> None:
    a, b = await cluster.node(), await cluster.node()
    here, there = Inbox(), Inbox()
    a.subscribe("bin", here)
    b.subscribe("bin", there)
    await cluster.settle()
    a.publish("bin", payload)
    assert await there.wait(1) == [payload]
    assert here.got == [payload]


async def test_closing_a_subscription_stops_delivery_everywhere(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    kept, dropped, local = Inbox(), Inbox(), Inbox()
    b.subscribe("c", kept)
    subscription = b.subscribe("c", dropped)
    a_subscription = a.subscribe("c", local)
    await cluster.settle()
    a.publish("c", b"1")
    await cluster.settle()
    subscription.close()
    subscription.close()  # idempotent
    a_subscription.close()
    await cluster.settle()
    a.publish("c", b"2")
    b.publish("c", b"3")
    await cluster.settle()
    assert sorted(kept.got) == [b"1", b"2", b"3"]  # two publishers: no order between them
    assert dropped.got == [b"1"]
    assert local.got == [b"1"]


async def test_a_node_that_unsubscribes_its_last_subscriber_can_subscribe_again(
    cluster: Cluster,
) -> None:
    a, b = await cluster.node(), await cluster.node()
    b.subscribe("c", Inbox()).close()
    await cluster.settle()
    again = Inbox()
    b.subscribe("c", again)
    await cluster.settle()
    a.publish("c", b"back")
    assert await again.wait(1) == [b"back"]


async def test_a_failing_subscriber_is_counted_and_the_others_still_get_it(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await cluster.node(), await cluster.node()

    def broken(payload: bytes) -> None:
        raise RuntimeError("subscriber bug")

    after_a, after_b = Inbox(), Inbox()
    for node, inbox in ((a, after_a), (b, after_b)):
        node.subscribe("c", broken)
        node.subscribe("c", inbox)
    await cluster.settle()
    a.publish("c", b"x")
    await cluster.settle()
    assert after_a.got == after_b.got == [b"x"]
    assert a.stats.delivery_errors == b.stats.delivery_errors == 1
    assert "subscriber bug" in caplog.text


async def test_subscribers_may_change_subscriptions_while_being_delivered(
    cluster: Cluster,
) -> None:
    a, b = await cluster.node(), await cluster.node()
    late = Inbox()
    seen: list[bytes] = []

    def once(payload: bytes) -> None:
        seen.append(payload)
        first.close()  # itself, mid-delivery
        b.subscribe("c", late)  # a new one, mid-delivery: from the next message on

    first = b.subscribe("c", once)
    await cluster.settle()
    a.publish("c", b"1")
    a.publish("c", b"2")
    await cluster.settle()
    assert seen == [b"1"]
    assert late.got == [b"2"]


async def test_counters(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    b.subscribe("c", Inbox())
    await cluster.settle()
    for _ in range(3):
        a.publish("c", b"m")
    await cluster.settle()
    assert (a.stats.published, b.stats.received) == (3, 3)
    assert (a.stats.received, b.stats.published) == (0, 0)  # own messages are not received
    assert a.pending == 0
    assert not a.stats.dropped


async def test_close(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    inbox = Inbox()
    a.subscribe("c", inbox)
    b.subscribe("c", inbox)
    await cluster.settle()
    await a.close()
    await a.close()  # idempotent
    assert (a.state, a.up) == (BackplaneState.CLOSED, False)
    a.publish("c", b"lost")
    assert a.stats.dropped["closed"] == 1
    late = Inbox()
    a.subscribe("c", late).close()
    with pytest.raises(BackplaneUnavailable):
        await a.flush()
    b.publish("c", b"kept")
    await b.flush()
    assert inbox.got == [b"kept"]  # b's own subscriber only: a is gone
    assert late.got == []


async def test_nodes_have_distinct_ids_and_a_backend_name(cluster: Cluster) -> None:
    nodes: list[Backplane] = [await cluster.node() for _ in range(3)]
    assert len({node.node_id for node in nodes}) == 3
    assert {node.backend for node in nodes} == {cluster.backend}
    assert all(node.state is BackplaneState.UP for node in nodes)
