"""The ``Backplane`` interface: how the nodes of one cluster hand each other messages.

A node is one server process. Every node of a cluster holds its own backplane object,
connected to the same bus (a Redis server, or one :class:`~.memory.MemoryHub` in tests).
The contract every backend keeps, and that ``tests/backplane/test_contract.py`` checks for
each of them:

* ``publish(channel, payload)`` never waits and never raises for a bus problem. Every
  subscriber of ``channel`` gets ``payload`` exactly once: this node's subscribers at once,
  before ``publish`` returns (so a local broadcast is as immediate as without a backplane,
  and still happens while the bus is down), every other node's subscribers when the bus
  brings it. A node never hands itself its own message a second time.
* Messages from one node on one channel arrive in the order they were published.
* A subscriber callback that raises is logged and counted; the others still get the
  message.
* While the bus is unreachable a node keeps its local delivery; what it does with messages
  for the other nodes is the backend's documented policy (Redis: a bounded buffer).

Payloads are bytes, channels are strings; the backplane never looks inside either.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "Backplane",
    "BackplaneState",
    "BackplaneStats",
    "BackplaneUnavailable",
    "Channel",
    "Deliver",
    "Subscription",
]

#: A subscriber callback: gets each payload of its channel. Runs in the event loop, so it
#: must not block; it may publish and (un)subscribe.
Deliver = Callable[[bytes], None]


class BackplaneState(enum.Enum):
    """Where a node stands with the bus."""

    CONNECTING = "connecting"  #: not connected yet since it was created or started
    UP = "up"  #: connected and subscribed: other nodes hear this one and vice versa
    DOWN = "down"  #: lost or never reached; local delivery goes on, reconnecting
    CLOSED = "closed"  #: closed for good


class BackplaneStats:
    """Cumulative counters of one backplane (one node's link to the others)."""

    __slots__ = ("published", "received", "dropped", "delivery_errors", "reconnects", "failures")

    def __init__(self) -> None:
        self.published = 0  # messages handed to the bus for the other nodes
        self.received = 0  # messages from other nodes (this node's own echoes not counted)
        #: Messages that never reached the bus, by reason: "overflow" (the outgoing buffer
        #: was full), "in-flight" (lost with a broken connection), "closed".
        self.dropped: Counter[str] = Counter()
        self.delivery_errors = 0  # local subscriber callbacks that raised
        self.reconnects = 0  # connections made again after one was lost
        self.failures = 0  # connection attempts that failed, and connections that broke


class BackplaneUnavailable(ConnectionError):
    """The bus cannot be reached now (raised by :meth:`Backplane.flush` only)."""


class Subscription(Protocol):
    """What :meth:`Backplane.subscribe` returns."""

    def close(self) -> None:
        """Stop delivering to this subscriber (idempotent)."""


class Backplane(Protocol):
    """One node's handle on the bus shared by every node of a cluster (see the module
    docstring for the contract)."""

    #: The backend's name, for metrics and logs ("memory", "redis").
    backend: str
    #: Counters: published, received, dropped by reason, reconnects, failures.
    stats: BackplaneStats

    @property
    def node_id(self) -> str:
        """This node's id, unique in the cluster (random unless given)."""

    @property
    def state(self) -> BackplaneState:
        """Where the node stands with the bus now."""

    @property
    def up(self) -> bool:
        """True while :attr:`state` is ``UP``."""

    @property
    def pending(self) -> int:
        """Messages published here and not yet handed to the bus."""

    def publish(self, channel: str, payload: bytes) -> None:
        """Give ``payload`` to every subscriber of ``channel`` on every node, once.

        Local subscribers get it before this returns; never waits for the bus.
        """

    def subscribe(self, channel: str, deliver: Deliver) -> Subscription:
        """Call ``deliver(payload)`` for every message on ``channel`` from any node.

        Takes effect at once locally; on other nodes' messages once the bus has it
        (:meth:`flush` waits for that).
        """

    async def start(self) -> None:
        """Connect (idempotent). Returns once connected, or after the backend's startup
        wait: an unreachable bus is retried in the background, never an error here."""

    async def flush(self) -> None:
        """Wait until the publishes and subscription changes made before this call have
        reached the bus, and what the bus sent this node before has been delivered.

        Raises:
            BackplaneUnavailable: the bus is not reachable now, or was lost meanwhile.
        """

    async def close(self) -> None:
        """Disconnect for good (idempotent); messages still pending are dropped and
        counted."""


class Channel:
    """Publish on ``name`` and hand every message from any node to ``receive``; ``publish``
    returns how many of *this node's* recipients got the message.

    ``Endpoint.broadcast`` and the STOMP broker publish to every node yet still report that
    count. The contract delivers this node's subscribers inside ``publish``, so the
    receiver's result for our own message is known when ``publish`` returns; ``Channel``
    captures it (re-entrant publishes included).

    Args:
        backplane: the bus.
        name: the channel.
        receive: delivers one payload on this node; returns how many local recipients got
            it.
    """

    def __init__(self, backplane: Backplane, name: str, receive: Callable[[bytes], int]) -> None:
        self.backplane = backplane
        self.name = name
        self._receive = receive
        self._last = 0
        self._subscription = backplane.subscribe(name, self._deliver)

    def _deliver(self, payload: bytes) -> None:
        self._last = self._receive(payload)

    def publish(self, payload: bytes) -> int:
        """Send ``payload`` to every node; returns how many local recipients got it."""
        outer, self._last = self._last, 0
        self.backplane.publish(self.name, payload)
        count, self._last = self._last, outer
        return count

    def close(self) -> None:
        """Stop receiving (idempotent)."""
        self._subscription.close()
