"""Broker semantics with real machines on an in-memory wire: topics, queues and
redelivery, application handlers, user queues, hooks and limits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sockjs_gateway.exceptions import LocalProtocolError
from sockjs_gateway.handler import ConnectionInfo
from sockjs_gateway.stomp import (
    AppMessage,
    Broker,
    ConnectRequest,
    Frame,
    Payload,
    StompOptions,
)
from tests.stomp.helpers import BrokerPeer, wire


async def peers(broker: Broker, count: int, **connect: str) -> list[BrokerPeer]:
    made = []
    for _ in range(count):
        peer = BrokerPeer(broker)
        assert (await peer.connect(**connect)).command == "CONNECTED"
        made.append(peer)
    return made


# -- topics -------------------------------------------------------------------------------


async def test_topic_fan_out_to_every_subscriber_only() -> None:
    broker = Broker()
    a, b, c, sender = await peers(broker, 4)
    await a.subscribe("/topic/news", "sa")
    await b.subscribe("/topic/news", "sb")
    await c.subscribe("/topic/sport")
    await sender.publish("/topic/news", "hello", **{"x-trace": "7", "receipt": "r"})
    [ma], [mb] = a.take("MESSAGE"), b.take("MESSAGE")
    assert c.take() == []
    assert (ma.text, ma.get("subscription"), mb.get("subscription")) == ("hello", "sa", "sb")
    assert ma.get("destination") == "/topic/news"
    assert ma.get("content-type") == "text/plain;charset=utf-8"
    assert ma.get("x-trace") == "7"
    assert ma.get("receipt") is None  # the broker's headers are not passed on
    assert ma.get("message-id") != mb.get("message-id")
    assert ma.get("ack") is None  # auto mode
    assert [f.get("receipt-id") for f in sender.take("RECEIPT")] == ["r"]


async def test_topic_subscription_in_client_mode_carries_ack() -> None:
    broker = Broker()
    a, sender = await peers(broker, 2)
    await a.subscribe("/topic/t", ack="client-individual")
    await sender.publish("/topic/t", "x")
    [message] = a.take("MESSAGE")
    assert message.get("ack") == message.get("message-id")
    await a.do(wire("ACK", {"id": message.get("ack") or ""}))
    assert not a.client.subscriptions["0"].unacked


async def test_unsubscribe_stops_delivery() -> None:
    broker = Broker()
    a, sender = await peers(broker, 2)
    await a.subscribe("/topic/t", "s1")
    await a.do(wire("UNSUBSCRIBE", {"id": "s1", "receipt": "u"}))
    await sender.publish("/topic/t", "x")
    assert [f.command for f in a.take()] == ["RECEIPT"]


async def test_selector_header_is_never_evaluated() -> None:
    broker = Broker()
    a, sender = await peers(broker, 2)
    await a.do(
        wire(
            "SUBSCRIBE",
            {"id": "0", "destination": "/topic/t", "selector": "T(java.lang.Runtime).exit(1)"},
        )
    )
    await sender.publish("/topic/t", "still delivered, unfiltered")
    assert a.bodies() == ["still delivered, unfiltered"]


# -- queues -------------------------------------------------------------------------------


async def test_queue_round_robin() -> None:
    broker = Broker()
    a, b, sender = await peers(broker, 3)
    await a.subscribe("/queue/work")
    await b.subscribe("/queue/work")
    for i in range(10):
        await sender.publish("/queue/work", str(i))
    assert a.bodies() == ["0", "2", "4", "6", "8"]
    assert b.bodies() == ["1", "3", "5", "7", "9"]


async def test_queue_holds_messages_until_a_consumer_comes() -> None:
    broker = Broker()
    [sender] = await peers(broker, 1)
    for body in "abc":
        await sender.publish("/queue/later", body)
    [late] = await peers(broker, 1)
    await late.subscribe("/queue/later")
    assert late.bodies() == ["a", "b", "c"]


async def test_nack_redelivers_to_the_next_consumer() -> None:
    broker = Broker()
    a, b, sender = await peers(broker, 3)
    await a.subscribe("/queue/q", ack="client-individual")
    await b.subscribe("/queue/q", ack="client-individual")
    await sender.publish("/queue/q", "m")
    [message] = a.take("MESSAGE")
    await a.do(wire("NACK", {"id": message.get("ack") or "", "receipt": "n"}))
    assert [f.get("receipt-id") for f in a.take("RECEIPT")] == ["n"]
    [again] = b.take("MESSAGE")
    assert (again.text, again.get("redelivered")) == ("m", "true")
    assert again.get("message-id") != message.get("message-id")


async def test_disconnect_redelivers_unacked_in_order_before_newer_messages() -> None:
    broker = Broker()
    a, b, sender = await peers(broker, 3)
    await a.subscribe("/queue/q", ack="client-individual")
    await b.subscribe("/queue/q", ack="client-individual")
    for i in range(4):
        await sender.publish("/queue/q", str(i))
    assert [m.text for m in a.take("MESSAGE")] == ["0", "2"]
    held = b.take("MESSAGE")
    assert [m.text for m in held] == ["1", "3"]
    await b.do(wire("ACK", {"id": held[0].get("ack") or ""}))  # "1" is done, "3" is not
    broker.detach(b.client)
    assert a.bodies() == ["3"]
    await sender.publish("/queue/q", "4")
    assert a.bodies() == ["4"]


async def test_redelivered_messages_go_ahead_of_waiting_ones() -> None:
    broker = Broker(StompOptions(max_unacked=1))
    a, sender = await peers(broker, 2)
    await a.subscribe("/queue/q", ack="client-individual")
    for body in "xyz":
        await sender.publish("/queue/q", body)
    [x] = a.take("MESSAGE")
    await a.do(wire("NACK", {"id": x.get("ack") or ""}))
    [again] = a.take("MESSAGE")
    assert (again.text, again.get("redelivered")) == ("x", "true")


async def test_unsubscribe_redelivers_unacked() -> None:
    broker = Broker()
    a, b, sender = await peers(broker, 3)
    await a.subscribe("/queue/q", "qa", ack="client")
    await sender.publish("/queue/q", "m")
    assert a.bodies() == ["m"]
    await a.do(wire("UNSUBSCRIBE", {"id": "qa"}))
    await b.subscribe("/queue/q")
    assert b.bodies() == ["m"]


async def three_unsettled(broker: Broker) -> tuple[BrokerPeer, BrokerPeer, list[Frame]]:
    """Peer ``a`` holding "1", "2" and "3" of ``/queue/q`` unsettled in client mode (the
    MESSAGE frames), and peer ``b``, connected and not subscribed."""
    a, b, sender = await peers(broker, 3)
    await a.subscribe("/queue/q", ack="client")
    for body in "123":
        await sender.publish("/queue/q", body)
    return a, b, a.take("MESSAGE")


async def test_client_mode_ack_is_cumulative() -> None:
    broker = Broker()
    a, b, messages = await three_unsettled(broker)
    await a.do(wire("ACK", {"id": messages[1].get("ack") or ""}))  # acks "1" and "2"
    assert list(a.client.subscriptions["0"].unacked) == [messages[2].get("ack")]
    broker.detach(a.client)
    await b.subscribe("/queue/q")
    assert b.bodies() == ["3"]


async def test_client_mode_nack_is_cumulative() -> None:
    broker = Broker()
    a, b, messages = await three_unsettled(broker)
    await b.subscribe("/queue/q")
    await a.do(wire("NACK", {"id": messages[1].get("ack") or ""}))
    assert sorted(a.bodies() + b.bodies()) == ["1", "2"]


async def test_ack_of_unknown_or_settled_id_is_ignored() -> None:
    broker = Broker()
    [a] = await peers(broker, 1)
    await a.do(wire("ACK", {"id": "nope", "receipt": "r"}))
    assert [f.command for f in a.take()] == ["RECEIPT"]


async def test_full_queue_consumers_are_skipped_until_they_ack() -> None:
    broker = Broker(StompOptions(max_unacked=2))
    a, b, sender = await peers(broker, 3)
    await a.subscribe("/queue/q", ack="client-individual")
    await b.subscribe("/queue/q")  # auto: never full
    for i in range(6):
        await sender.publish("/queue/q", str(i))
    held = a.take("MESSAGE")
    assert [m.text for m in held] == ["0", "2"]
    assert b.bodies() == ["1", "3", "4", "5"]
    broker.detach(b.client)
    await sender.publish("/queue/q", "6")
    assert a.take("MESSAGE") == []  # waits: the only consumer is full
    await a.do(wire("ACK", {"id": held[0].get("ack") or ""}))
    assert a.bodies() == ["6"]


# -- application destinations -------------------------------------------------------------


async def test_app_mapping_replies_to_the_sender_only() -> None:
    broker = Broker()
    seen: list[tuple[str, str | None, str]] = []

    @broker.message_mapping("/echo")
    def echo(message: AppMessage) -> None:
        seen.append((message.destination, message.user, message.text))
        message.reply(message.body, headers={"x-echo": "1"})

    a, b = await peers(broker, 2)
    await a.subscribe("/user/queue/echo")
    await b.subscribe("/user/queue/echo")
    await a.publish("/app/echo", "ping", receipt="r")
    [reply] = a.take("MESSAGE")
    assert (reply.text, reply.get("destination"), reply.get("x-echo")) == (
        "ping",
        "/user/queue/echo",
        "1",
    )
    assert b.take() == []
    assert seen == [("/app/echo", None, "ping")]
    assert [f.get("receipt-id") for f in a.take("RECEIPT")] == ["r"]


async def test_async_app_mapping_publishes_and_receipt_waits_for_it() -> None:
    broker = Broker()

    @broker.message_mapping("shout")
    async def shout(message: AppMessage) -> None:
        await asyncio.sleep(0)
        message.publish("/topic/shout", message.text.upper())

    a, listener = await peers(broker, 2)
    await listener.subscribe("/topic/shout")
    await a.subscribe("/topic/shout")
    await a.publish("/app/shout", "hey", receipt="done")
    assert [f.command for f in a.take()] == ["MESSAGE", "RECEIPT"]
    assert listener.bodies() == ["HEY"]


async def test_unknown_app_destination_is_an_error() -> None:
    broker = Broker()
    [a] = await peers(broker, 1)
    await a.publish("/app/nothing", "x")
    assert a.error() == "no application handler for '/app/nothing'"


async def test_failing_app_handler_is_logged_and_ends_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = Broker()

    @broker.message_mapping("/boom")
    def boom(message: AppMessage) -> None:
        raise RuntimeError("bug")

    [a] = await peers(broker, 1)
    with caplog.at_level(logging.ERROR, "sockjs_gateway.stomp"):
        await a.publish("/app/boom", "x", receipt="r")
    [error] = a.take("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == ("internal server error", "r")
    assert "STOMP handler failed" in caplog.text
    assert broker.clients == 0


def test_mapping_names_must_be_unique() -> None:
    broker = Broker()
    broker.message_mapping("/a")(lambda message: None)
    with pytest.raises(ValueError, match="duplicate"):
        broker.message_mapping("a")(lambda message: None)


async def test_app_prefix_is_configurable() -> None:
    broker = Broker(StompOptions(app_prefix="/srv/"))
    got: list[str] = []
    broker.message_mapping("/x")(lambda message: got.append(message.text))
    [a] = await peers(broker, 1)
    await a.publish("/srv/x", "1")
    assert got == ["1"]
    await a.publish("/app/x", "2")
    assert a.error() == "cannot send to '/app/x': use /topic/, /queue/ or /srv/"


# -- user destinations --------------------------------------------------------------------


def named(broker: Broker) -> None:
    def authenticate(request: ConnectRequest, info: ConnectionInfo | None) -> str | None:
        return request.login

    broker.authenticate = authenticate


async def test_send_to_user_reaches_every_session_of_that_user_only() -> None:
    broker = Broker()
    named(broker)
    alice1, alice2 = await peers(broker, 2, login="alice")
    [bob] = await peers(broker, 1, login="bob")
    for peer in (alice1, alice2, bob):
        await peer.subscribe("/user/queue/inbox")
    assert broker.send_to_user("alice", "/queue/inbox", "hi alice") == 2
    assert broker.send_to_user("alice", "/user/queue/inbox", "again") == 2
    assert alice1.bodies() == alice2.bodies() == ["hi alice", "again"]
    assert bob.take() == []
    assert broker.send_to_user("carol", "/queue/inbox", "nobody") == 0


async def test_clients_cannot_send_to_user_destinations() -> None:
    broker = Broker()
    [a] = await peers(broker, 1)
    await a.publish("/user/queue/inbox", "x")
    assert a.error() == "cannot send to '/user/queue/inbox': use /topic/, /queue/ or /app/"


# -- hooks --------------------------------------------------------------------------------


async def test_authenticate_hook_names_the_user() -> None:
    calls: list[tuple[str | None, str | None, str | None]] = []

    async def authenticate(request: ConnectRequest, info: ConnectionInfo | None) -> str | None:
        calls.append((request.login, request.passcode, request.host))
        return "alice" if request.passcode == "secret" else None

    broker = Broker(authenticate=authenticate)
    good, bad = BrokerPeer(broker), BrokerPeer(broker)
    connected = await good.connect(login="al", passcode="secret", host="h")
    assert connected.get("user-name") == "alice"
    assert good.client.user == "alice"
    refused = await bad.connect(login="al", passcode="guess")
    assert (refused.command, refused.get("message")) == ("ERROR", "authentication failed")
    assert calls == [("al", "secret", "h"), ("al", "guess", None)]
    assert broker.clients == 1


async def test_authorization_hooks_per_destination() -> None:
    checked: list[tuple[str, str | None, str]] = []

    def may_subscribe(user: str | None, destination: str) -> bool:
        checked.append(("subscribe", user, destination))
        return not destination.startswith("/topic/secret")

    async def may_send(user: str | None, destination: str) -> bool:
        checked.append(("send", user, destination))
        return destination != "/queue/readonly"

    broker = Broker(authorize_subscribe=may_subscribe, authorize_send=may_send)
    a, b, c = await peers(broker, 3)
    await a.subscribe("/topic/open")
    await a.publish("/topic/open", "ok")
    assert a.bodies() == ["ok"]
    await b.do(wire("SUBSCRIBE", {"id": "0", "destination": "/topic/secret/x", "receipt": "r"}))
    [error] = b.take("ERROR")
    assert error.get("message") == "not authorized to subscribe to /topic/secret/x"
    assert error.get("receipt-id") == "r"
    await c.publish("/queue/readonly", "x")
    assert c.error() == "not authorized to send to /queue/readonly"
    assert checked == [
        ("subscribe", None, "/topic/open"),
        ("send", None, "/topic/open"),
        ("subscribe", None, "/topic/secret/x"),
        ("send", None, "/queue/readonly"),
    ]


# -- destinations and subscriptions -------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("/exchange/x", "cannot subscribe to '/exchange/x': use /topic/, /queue/ or /user/queue/"),
        ("/app/echo", "cannot subscribe to '/app/echo'"),
        ("/topicx", "cannot subscribe to '/topicx'"),
    ],
)
async def test_subscribe_to_unknown_destinations_is_an_error(
    destination: str, message: str
) -> None:
    [a] = await peers(Broker(), 1)
    await a.subscribe(destination)
    assert (a.error() or "").startswith(message)


async def test_duplicate_and_unknown_subscription_ids() -> None:
    [a, b] = await peers(Broker(), 2)
    await a.subscribe("/topic/x", "s")
    await a.subscribe("/topic/y", "s")
    assert a.error() == "subscription id 's' is already in use"
    await b.do(wire("UNSUBSCRIBE", {"id": "zzz"}))
    assert b.error() == "no subscription with id 'zzz'"


async def test_transaction_delivers_on_commit() -> None:
    broker = Broker()
    a, sender = await peers(broker, 2)
    await a.subscribe("/queue/q")
    await sender.do(
        wire("BEGIN", {"transaction": "t"})
        + wire("SEND", {"destination": "/queue/q", "transaction": "t"}, "1")
        + wire("SEND", {"destination": "/queue/q", "transaction": "t"}, "2")
    )
    assert a.take() == []
    await sender.do(wire("COMMIT", {"transaction": "t", "receipt": "c"}))
    assert a.bodies() == ["1", "2"]
    assert [f.get("receipt-id") for f in sender.take("RECEIPT")] == ["c"]


# -- limits -------------------------------------------------------------------------------


async def test_subscription_limit() -> None:
    [a] = await peers(Broker(StompOptions(max_subscriptions=2)), 1)
    await a.subscribe("/topic/1", "1")
    await a.subscribe("/topic/2", "2")
    assert a.error() is None
    await a.subscribe("/topic/3", "3")
    assert a.error() == "too many subscriptions (limit 2)"


async def test_topic_consumer_that_stops_acking_is_disconnected() -> None:
    broker = Broker(StompOptions(max_unacked=2))
    slow, fast, sender = await peers(broker, 3)
    await slow.subscribe("/topic/t", "slow", ack="client")
    await fast.subscribe("/topic/t")
    for i in range(3):
        await sender.publish("/topic/t", str(i))
    assert slow.bodies() == ["0", "1"]
    assert slow.error() == "too many unacknowledged messages on subscription 'slow' (limit 2)"
    assert slow.machine.closed
    assert fast.bodies() == ["0", "1", "2"]
    assert broker.clients == 2


async def test_queue_depth_limit() -> None:
    broker = Broker(StompOptions(max_queued=2))
    [sender] = await peers(broker, 1)
    await sender.publish("/queue/q", "1")
    await sender.publish("/queue/q", "2")
    await sender.publish("/queue/q", "3", receipt="r")
    [error] = sender.take("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == (
        "queue /queue/q is full (limit 2)",
        "r",
    )


# -- server-side API and the relay seam ---------------------------------------------------


async def test_publish_from_the_server() -> None:
    broker = Broker()
    a, b = await peers(broker, 2)
    await a.subscribe("/topic/t")
    await b.subscribe("/queue/q")
    broker.publish("/topic/t", "to topic", {"content-type": "application/json"})
    broker.publish("/queue/q", b"to queue")
    [message] = a.take("MESSAGE")
    assert (message.text, message.get("content-type")) == ("to topic", "application/json")
    assert b.bodies() == ["to queue"]


@pytest.mark.parametrize(
    ("destination", "body", "message"),
    [
        ("/user/queue/x", "x", "publish\\(\\) needs a /topic/ or /queue/ destination"),
        ("/topic/t", b"\xff", "UTF-8"),
        ("/topic/t", "x", "NUL"),
    ],
)
def test_publish_refuses_what_it_cannot_deliver(
    destination: str, body: str | bytes, message: str
) -> None:
    headers = {"k": "a\0"} if message == "NUL" else {}
    with pytest.raises(LocalProtocolError, match=message):
        Broker().publish(destination, body, headers)


async def test_topic_traffic_leaves_through_the_relay() -> None:
    broker = Broker()
    relayed: list[tuple[str, Payload]] = []

    def relay(destination: str, payload: Payload) -> None:
        relayed.append((destination, payload))
        broker.deliver_topic(destination, payload)

    broker.topic_relay = relay
    a, sender = await peers(broker, 2)
    await a.subscribe("/topic/t")
    await sender.publish("/topic/t", "via relay", **{"x-k": "v"})
    broker.publish("/topic/t", "server side")
    assert a.bodies() == ["via relay", "server side"]
    assert relayed[0] == (
        "/topic/t",
        Payload((("x-k", "v"),), b"via relay"),
    )


async def test_detach_is_idempotent_and_forgets_the_client() -> None:
    broker = Broker()
    [a] = await peers(broker, 1)
    await a.subscribe("/topic/t")
    broker.detach(a.client)
    broker.detach(a.client)
    assert broker.clients == 0
    assert broker.deliver_topic("/topic/t", Payload.make("x")) == 0
