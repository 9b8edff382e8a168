"""``BrokerBridge``: STOMP ``/topic/`` and ``/user/`` traffic through a backplane.

It lives with the broker it drives (the backplane knows nothing of STOMP);
``sockjs_gateway.backplane.BrokerBridge`` still names it.

A topic message (or one for a user) published on any node is handed to the broker of
every node, which gives it to its own subscribers (``Broker.deliver_topic`` /
``Broker.deliver_user``), so each STOMP subscription in the cluster gets it exactly once
and the user's sessions are found on whichever node holds them. Each broker uses two
channels, ``stomp:<name>:topic`` and ``stomp:<name>:user``, whatever the destination:
nodes never (un)subscribe on the bus as STOMP clients come and go, at the price of every
node receiving every topic message (a node with no subscriber for it drops it after one
dict lookup).

``/queue/`` destinations stay node-local, on purpose: a queue hands each message to one
consumer and keeps it until that consumer ACKs, with redelivery on NACK or disconnect.
Cluster-wide, that needs a store that survives a node (Redis Streams with a consumer
group, pending-entry claims after a node dies), a different durability promise from this
in-memory broker. A SEND to ``/queue/x`` on node A reaches only consumers on node A. Use a
real message broker (RabbitMQ's STOMP plugin, for one) when work queues must span nodes.

Wire format of one message: ``json([route, headers])`` NEWLINE body, where ``route`` is
``[destination]`` or ``[user, destination]``; the body travels as raw bytes.
"""

from __future__ import annotations

import json

from ..backplane.base import Backplane, Channel
from .broker import Broker
from .messages import Payload

__all__ = ["BrokerBridge"]


def _encode(route: list[str], payload: Payload) -> bytes:
    head = json.dumps([route, payload.headers], separators=(",", ":"))
    return head.encode() + b"\n" + payload.body


def _decode(data: bytes) -> tuple[list[str], Payload]:
    head, _, body = data.partition(b"\n")
    route, headers = json.loads(head)
    return route, Payload(tuple((str(k), str(v)) for k, v in headers), body)


class BrokerBridge:
    """Route ``broker``'s topic and user traffic through ``backplane``.

    Args:
        broker: the STOMP broker of this node.
        backplane: the bus shared with the other nodes.
        name: names the broker's channels; the same broker on every node must use the
            same name, and different brokers different names (the endpoint prefix does).
    """

    def __init__(self, broker: Broker, backplane: Backplane, name: str = "stomp") -> None:
        self.broker = broker
        self._topics = Channel(backplane, f"stomp:{name}:topic", self._on_topic)
        self._users = Channel(backplane, f"stomp:{name}:user", self._on_user)
        broker.topic_relay = self._relay_topic
        broker.user_relay = self._relay_user

    def _relay_topic(self, destination: str, payload: Payload) -> int:
        return self._topics.publish(_encode([destination], payload))

    def _relay_user(self, user: str, destination: str, payload: Payload) -> int:
        return self._users.publish(_encode([user, destination], payload))

    def _on_topic(self, data: bytes) -> int:
        [destination], payload = _decode(data)
        return self.broker.deliver_topic(destination, payload)

    def _on_user(self, data: bytes) -> int:
        [user, destination], payload = _decode(data)
        return self.broker.deliver_user(user, destination, payload)

    def close(self) -> None:
        """Give the broker back its in-process relays and stop receiving."""
        broker = self.broker
        if broker.topic_relay == self._relay_topic:
            broker.topic_relay = broker.deliver_topic
        if broker.user_relay == self._relay_user:
            broker.user_relay = broker.deliver_user
        self._topics.close()
        self._users.close()
