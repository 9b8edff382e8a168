"""``Channel``: a backplane channel with one local receiver, whose count ``publish`` returns.

``Endpoint.broadcast`` and the STOMP broker publish to every node yet still report how many
of *this node's* sessions got the message. The backplane contract delivers this node's
subscribers synchronously inside ``publish``, so the receiver's result for our own message
is known when ``publish`` returns; ``Channel`` captures it (re-entrant publishes included).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Backplane

__all__ = ["Channel"]


class Channel:
    """Publish on ``name`` and hand every message from any node to ``receive``.

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
