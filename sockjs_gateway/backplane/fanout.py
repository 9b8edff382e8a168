"""This node's subscribers, by channel: the half of every backend that never does I/O.

:class:`Fanout` is the channel hubs' :class:`~sockjs_gateway.history.hub.Listeners`
(callbacks by channel, delivered from a snapshot, one that raises logged and, here,
counted) for payload bytes. :class:`LocalNode` holds the members of the interface every
backend writes the same way on top of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..history.hub import Listeners
from .base import BackplaneState, BackplaneStats, Deliver, Subscription

__all__ = ["Fanout", "LocalNode"]

log = logging.getLogger("sockjs_gateway.backplane")


class Fanout(Listeners[bytes]):
    """Subscribers by channel: :class:`~sockjs_gateway.history.hub.Listeners` of payloads.

    Args:
        stats: where ``delivery_errors`` is counted.
        on_change: called when a channel gains its first subscriber or loses its last
            (the Redis backend then (un)subscribes on the bus).
    """

    __slots__ = ()

    def __init__(self, stats: BackplaneStats, on_change: Callable[[], None] | None = None) -> None:
        def failed(channel: str) -> None:
            stats.delivery_errors += 1
            log.exception("backplane subscriber of %r failed", channel)

        def changed(_channel: str) -> None:
            if on_change is not None:
                on_change()

        super().__init__(changed, on_first=changed, on_error=failed)


class LocalNode:
    """What every backend's node shares: its id, its state and its local subscribers.

    A backend sets ``_node_id``, ``_state`` and ``_fanout`` in its ``__init__``; these
    members of the :class:`~.base.Backplane` interface are then written once, here.
    """

    _node_id: str
    _state: BackplaneState
    _fanout: Fanout

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def state(self) -> BackplaneState:
        return self._state

    @property
    def up(self) -> bool:
        return self._state is BackplaneState.UP

    def subscribe(self, channel: str, deliver: Deliver) -> Subscription:
        return self._fanout.add(channel, deliver)
