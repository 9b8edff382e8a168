"""The broker-wide and per-connection STOMP limits that bound memory: destinations,
queued bytes, transaction bytes; empty destinations are forgotten; and what an unmapped
``/app/`` SEND gets. Real machines and a real broker on an in-memory wire."""

from __future__ import annotations

import logging

import pytest

from sockjs_gateway.logs import refusal
from sockjs_gateway.stomp import Broker, StompOptions
from tests.stomp.helpers import BrokerPeer, wire


async def connected(broker: Broker, count: int = 1) -> list[BrokerPeer]:
    made = []
    for _ in range(count):
        peer = BrokerPeer(broker)
        assert (await peer.connect()).command == "CONNECTED"
        made.append(peer)
    return made


# -- destinations -------------------------------------------------------------------------


async def test_subscribing_past_max_destinations_is_an_error_naming_it() -> None:
    broker = Broker(StompOptions(max_destinations=3))
    a, b = await connected(broker, 2)
    await a.subscribe("/topic/1", "1")
    await a.subscribe("/queue/2", "2")
    await a.subscribe("/user/queue/3", "3")
    await b.subscribe("/topic/1", "1")  # a known destination still takes subscribers
    assert (a.error(), b.error(), broker.destinations) == (None, None, 3)
    await b.subscribe("/topic/4", "4")
    assert b.error() == "too many destinations (max_destinations=3)"
    assert b.machine.closed
    assert broker.destinations == 3


async def test_sending_to_a_new_queue_past_max_destinations_is_an_error() -> None:
    broker = Broker(StompOptions(max_destinations=2))
    [a] = await connected(broker)
    await a.publish("/queue/1", "x")
    await a.publish("/queue/2", "x")
    await a.publish("/queue/1", "more")  # an existing queue takes more messages
    await a.publish("/topic/nobody", "x")  # a topic without subscribers holds nothing
    assert a.error() is None
    await a.publish("/queue/3", "x", receipt="r")
    [error] = a.take("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == (
        "too many destinations (max_destinations=2)",
        "r",
    )
    assert broker.destinations == 2


async def test_server_publish_past_max_destinations_raises_the_limit() -> None:
    broker = Broker(StompOptions(max_destinations=1))
    broker.publish("/queue/1", "x")
    with pytest.raises(Exception, match="max_destinations=1"):
        broker.publish("/queue/2", "x")


async def test_empty_destinations_are_forgotten() -> None:
    broker = Broker()
    a, b = await connected(broker, 2)
    await a.subscribe("/queue/q", "q", ack="client-individual")
    await a.subscribe("/topic/t", "t")
    await a.subscribe("/user/queue/u", "u")
    await b.publish("/queue/q", "1")
    await b.publish("/queue/waiting", "2")
    assert broker.destinations == 4
    await a.do(wire("UNSUBSCRIBE", {"id": "t"}) + wire("UNSUBSCRIBE", {"id": "u"}))
    assert broker.destinations == 2  # the queue still has its consumer
    [message] = a.take("MESSAGE")
    await a.do(wire("ACK", {"id": message.get("ack") or ""}))
    await a.do(wire("UNSUBSCRIBE", {"id": "q"}))
    assert broker.destinations == 1  # no consumer, no message: gone
    await a.subscribe("/queue/waiting", "w")
    assert a.bodies() == ["2"]
    broker.detach(a.client)
    assert (broker.destinations, broker.queued_bytes) == (0, 0)


async def test_disconnect_forgets_every_destination_it_alone_kept() -> None:
    broker = Broker(StompOptions(max_subscriptions=500))
    [a] = await connected(broker)
    for i in range(500):
        await a.subscribe(f"/queue/{i}" if i % 2 else f"/topic/{i}", str(i))
    assert broker.destinations == 500
    broker.detach(a.client)
    assert broker.destinations == 0


# -- queued bytes -------------------------------------------------------------------------


async def test_queue_sends_past_max_queued_bytes_are_an_error_naming_it() -> None:
    broker = Broker(StompOptions(max_queued_bytes=10_000))
    a, consumer = await connected(broker, 2)
    body = "x" * 3000
    for i in range(3):
        await a.publish(f"/queue/{i}", body)
    assert a.error() is None
    assert 9000 <= broker.queued_bytes <= 10_000
    await a.publish("/queue/3", body)
    assert a.error() == "the broker holds too many queued bytes (max_queued_bytes=10000)"
    assert broker.destinations == 3  # the refused SEND made no queue
    # Draining makes room again, for anyone.
    await consumer.subscribe("/queue/0", "0")
    assert consumer.bodies() == [body]
    [b] = await connected(broker)
    await b.publish("/queue/3", body)
    assert b.error() is None


async def test_unacked_messages_count_and_are_freed_by_ack_nack_and_disconnect() -> None:
    broker = Broker()
    a, b, sender = await connected(broker, 3)
    await a.subscribe("/queue/q", "q", ack="client")
    await a.subscribe("/topic/t", "t", ack="client-individual")
    await sender.publish("/queue/q", "queued")
    await sender.publish("/topic/t", "topic")
    held = broker.queued_bytes
    assert held >= len("queued") + len("topic")
    acks = {f.get("subscription"): f.get("ack") or "" for f in a.take("MESSAGE")}
    await a.do(wire("NACK", {"id": acks["q"]}))  # redelivered to a: still held
    assert a.bodies() == ["queued"]
    assert broker.queued_bytes > len("topic")
    await a.do(wire("ACK", {"id": acks["t"]}))
    await a.do(wire("UNSUBSCRIBE", {"id": "q"}))  # back in the queue: still held
    assert broker.queued_bytes > 0
    await b.subscribe("/queue/q", "q")  # auto ack: delivered and forgotten
    assert b.bodies() == ["queued"]
    assert broker.queued_bytes == 0
    await sender.publish("/topic/t", "again")
    assert broker.queued_bytes > 0
    broker.detach(a.client)
    assert (broker.queued_bytes, broker.destinations) == (0, 1)  # /queue/q keeps b


async def test_topic_subscriber_whose_unacked_bytes_cross_the_limit_is_ended() -> None:
    broker = Broker(StompOptions(max_queued_bytes=5000))
    slow, fast, sender = await connected(broker, 3)
    await slow.subscribe("/topic/t", "slow", ack="client")
    await fast.subscribe("/topic/t", "fast")
    for _ in range(3):
        await sender.publish("/topic/t", "y" * 2000)
    assert len(slow.bodies()) == 2
    assert slow.error() == "the broker holds too many queued bytes (max_queued_bytes=5000)"
    assert len(fast.bodies()) == 3
    assert sender.error() is None
    assert broker.queued_bytes == 0


# -- transactions -------------------------------------------------------------------------


async def test_transaction_bytes_are_bounded_per_connection() -> None:
    broker = Broker(StompOptions(max_transaction_bytes=10_000))
    [a] = await connected(broker)
    body = "z" * 3000
    begin = wire("BEGIN", {"transaction": "t1"}) + wire("BEGIN", {"transaction": "t2"})
    await a.do(begin)
    for name in ("t1", "t2", "t1"):
        await a.do(wire("SEND", {"destination": "/queue/q", "transaction": name}, body))
    assert a.error() is None
    await a.do(wire("SEND", {"destination": "/queue/q", "transaction": "t2"}, body))
    assert a.error() == "open transactions hold too many bytes (max_transaction_bytes=10000)"
    assert broker.destinations == 0  # nothing held was delivered


async def test_commit_and_abort_give_the_transaction_bytes_back() -> None:
    broker = Broker(StompOptions(max_transaction_bytes=10_000))
    a, consumer = await connected(broker, 2)
    await consumer.subscribe("/queue/q")
    body = "z" * 4000
    for end in ("COMMIT", "ABORT", "COMMIT"):
        await a.do(
            wire("BEGIN", {"transaction": "t"})
            + wire("SEND", {"destination": "/queue/q", "transaction": "t"}, body)
            + wire("SEND", {"destination": "/queue/q", "transaction": "t"}, body)
            + wire(end, {"transaction": "t"})
        )
    assert a.error() is None
    assert len(consumer.bodies()) == 4


# -- unmapped application destinations ----------------------------------------------------


async def test_unmapped_app_send_is_an_error_by_default() -> None:
    broker = Broker()
    [a] = await connected(broker)
    await a.subscribe("/topic/t")
    await a.publish("/app/nothing", "x", receipt="r")
    [error] = a.take("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == (
        "no application handler for '/app/nothing'",
        "r",
    )
    assert 'unknown_app_destination="ignore"' in error.text
    assert a.machine.closed


async def test_unmapped_app_send_can_be_ignored_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal.reset()
    broker = Broker(StompOptions(unknown_app_destination="ignore"))
    a, b = await connected(broker, 2)
    await a.subscribe("/topic/t")
    with caplog.at_level(logging.WARNING, "sockjs_gateway"):
        for _ in range(5):
            await b.publish("/app/nothing", "x", receipt="r")
    assert [f.get("receipt-id") for f in b.take("RECEIPT")] == ["r"] * 5
    assert b.error() is None
    assert not b.machine.closed
    await b.publish("/topic/t", "still here")
    assert a.bodies() == ["still here"]  # the subscription survived
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert lines == [
        "STOMP SEND to '/app/nothing' ignored: no message_mapping handles it"
        " (session s-1, user None)"
    ]


def test_unknown_app_destination_values_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown_app_destination"):
        StompOptions(unknown_app_destination="drop")  # type: ignore[arg-type]
