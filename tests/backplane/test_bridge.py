"""STOMP across nodes: two brokers, each bridged to its own node of one bus (memory or a
real Redis). Topics and user destinations cross nodes exactly once; queues stay local."""

from __future__ import annotations

from sockjs_gateway.backplane import BrokerBridge
from sockjs_gateway.handler import ConnectionInfo
from sockjs_gateway.stomp import Broker, ConnectRequest
from tests.backplane.conftest import Cluster
from tests.stomp.helpers import BrokerPeer


def named_broker() -> Broker:
    def authenticate(request: ConnectRequest, info: ConnectionInfo | None) -> str | None:
        return request.login or "anonymous"

    return Broker(authenticate=authenticate)


async def bridged(cluster: Cluster) -> tuple[Broker, Broker, list[BrokerBridge]]:
    a, b = named_broker(), named_broker()
    bridges = [BrokerBridge(a, await cluster.node()), BrokerBridge(b, await cluster.node())]
    return a, b, bridges


async def peer(broker: Broker, login: str = "anonymous") -> BrokerPeer:
    made = BrokerPeer(broker)
    assert (await made.connect(login=login)).command == "CONNECTED"
    return made


async def test_topic_messages_reach_every_subscriber_on_every_node_once(
    cluster: Cluster,
) -> None:
    a, b, _ = await bridged(cluster)
    on_a, on_b, other_b = await peer(a), await peer(b), await peer(b)
    for each in (on_a, on_b, other_b):
        await each.subscribe("/topic/news")
    await other_b.subscribe("/topic/other", sub_id="9")
    await cluster.settle()
    await on_a.publish("/topic/news", "from a's client", colour="red")
    b.publish("/topic/news", "from b's server")
    await cluster.settle()
    for each in (on_a, on_b):
        frames = each.take("MESSAGE")
        assert sorted(f.text for f in frames) == ["from a's client", "from b's server"]
        [red] = [f for f in frames if f.text == "from a's client"]
        assert red.get("colour") == "red"  # user headers cross nodes too
    assert sorted(other_b.bodies()) == ["from a's client", "from b's server"]


async def test_a_user_s_sessions_on_every_node_get_messages_for_that_user(
    cluster: Cluster,
) -> None:
    a, b, _ = await bridged(cluster)
    alice_a, alice_b, bob_b = await peer(a, "alice"), await peer(b, "alice"), await peer(b, "bob")
    for each in (alice_a, alice_b, bob_b):
        await each.subscribe("/user/queue/inbox")
    await cluster.settle()
    assert a.send_to_user("alice", "/queue/inbox", "hi alice") == 1  # on this node
    assert b.send_to_user("carol", "/queue/inbox", "nobody") == 0
    await cluster.settle()
    assert alice_a.bodies() == alice_b.bodies() == ["hi alice"]
    assert bob_b.take() == []


async def test_queues_stay_on_their_node(cluster: Cluster) -> None:
    a, b, _ = await bridged(cluster)
    sender, consumer_b = await peer(a), await peer(b)
    await consumer_b.subscribe("/queue/jobs")
    await cluster.settle()
    await sender.publish("/queue/jobs", "job 1")
    await cluster.settle()
    assert consumer_b.take() == []  # node-local, as documented
    consumer_a = await peer(a)
    await consumer_a.subscribe("/queue/jobs")
    assert consumer_a.bodies() == ["job 1"]


async def test_closing_the_bridge_gives_the_broker_back_its_own_relays(
    cluster: Cluster,
) -> None:
    a, b, bridges = await bridged(cluster)
    on_a, on_b = await peer(a), await peer(b)
    await on_a.subscribe("/topic/t")
    await on_b.subscribe("/topic/t")
    await cluster.settle()
    bridges[0].close()
    assert a.topic_relay == a.deliver_topic
    assert a.user_relay == a.deliver_user
    a.publish("/topic/t", "local only")
    b.publish("/topic/t", "b only")
    await cluster.settle()
    assert on_a.bodies() == ["local only"]
    assert on_b.bodies() == ["b only"]
