"""This node's subscribers, by channel: the half of every backend that never does I/O.

Delivery walks a snapshot of a channel's subscribers, so a callback may subscribe or
unsubscribe (itself or others) while a message is being delivered (the bug of aio-libs
sockjs #218 was iterating a live dict). A callback that raises is a local bug: it is
logged and counted, and the other subscribers still get the message. :class:`LocalNode`
holds the members of the interface every backend writes the same way on top of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from .base import BackplaneState, BackplaneStats, Deliver, Subscription

__all__ = ["Fanout", "LocalNode"]

log = logging.getLogger("sockjs_gateway.backplane")


class _Handle:
    __slots__ = ("_fanout", "channel", "deliver")

    def __init__(self, fanout: Fanout, channel: str, deliver: Deliver) -> None:
        self._fanout: Fanout | None = fanout
        self.channel = channel
        self.deliver = deliver

    def close(self) -> None:
        fanout, self._fanout = self._fanout, None
        if fanout is not None:
            fanout.remove(self)


class Fanout:
    """Subscribers by channel.

    Args:
        stats: where ``delivery_errors`` is counted.
        on_change: called when a channel gains its first subscriber or loses its last
            (the Redis backend then (un)subscribes on the bus).
    """

    def __init__(self, stats: BackplaneStats, on_change: Callable[[], None] | None = None) -> None:
        self._stats = stats
        self._on_change = on_change
        self._by_channel: dict[str, list[_Handle]] = {}
        self._closed = False

    def channels(self) -> Collection[str]:
        """Channels with at least one subscriber."""
        return self._by_channel.keys()

    def add(self, channel: str, deliver: Deliver) -> _Handle:
        """A new subscriber; its ``close()`` removes it. After :meth:`clear`, a handle
        that delivers nothing."""
        handle = _Handle(self, channel, deliver)
        if self._closed:
            handle._fanout = None
            return handle
        handles = self._by_channel.setdefault(channel, [])
        handles.append(handle)
        if len(handles) == 1 and self._on_change is not None:
            self._on_change()
        return handle

    def remove(self, handle: _Handle) -> None:
        handles = self._by_channel.get(handle.channel)
        if handles is None or handle not in handles:
            return
        handles.remove(handle)
        if not handles:
            del self._by_channel[handle.channel]
            if self._on_change is not None:
                self._on_change()

    def deliver(self, channel: str, payload: bytes) -> None:
        """Hand ``payload`` to every subscriber of ``channel`` now."""
        handles = self._by_channel.get(channel)
        if not handles:
            return
        for handle in tuple(handles):
            try:
                handle.deliver(payload)
            except Exception:
                self._stats.delivery_errors += 1
                log.exception("backplane subscriber of %r failed", channel)

    def clear(self) -> None:
        """Forget every subscriber and take no more (the backplane closed)."""
        self._closed = True
        for handles in self._by_channel.values():
            for handle in handles:
                handle._fanout = None
        self._by_channel.clear()


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
