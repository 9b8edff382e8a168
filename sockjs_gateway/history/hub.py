"""``Channels``: publish to named channels, each with its history; subscribe from a point.

One ``Channels`` object is the hub that the plain SockJS API (``endpoint.publish``,
``session.subscribe``), the EventSource endpoint (:func:`~sockjs_gateway.add_event_stream`)
and any number of endpoints share: a message published once gets one offset, is retained
once, and is handed once to each *listener* of its channel. A listener is one object per
endpoint or stream that fans the message out to its own clients, so the message is
formatted and encoded once per listener, not once per client.

Subscribing is "listen, then read": a listener is registered before the history is read,
and each client's :class:`~.positions.Cursor` admits a message once, so a message
published between the two steps is neither lost nor doubled. With this in-memory hub both
steps happen in one call and nothing can slip between them; the order is kept so that a
hub whose history is remote (read with a round trip) keeps the same guarantee.

The hub never imports asyncio: the clock is injected (``time.time`` by default).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from .positions import Start
from .store import Entry, HistoryLimits, HistoryStats, HistoryStore, Replay

__all__ = ["Channels", "ChannelHub", "Listener", "Closable", "CHANNEL_NAME_LIMIT"]

log = logging.getLogger("sockjs_gateway.history")

#: Longest channel name accepted, in characters.
CHANNEL_NAME_LIMIT = 200
#: A listener gets every message of its channel, with its position.
Listener = Callable[[Entry[str]], None]


class Closable(Protocol):
    """What :meth:`ChannelHub.listen` returns."""

    def close(self) -> None:
        """Stop listening (idempotent)."""


class ChannelHub(Protocol):
    """What endpoints and event streams need of a hub: :class:`Channels` in memory, or
    :class:`sockjs_gateway.backplane.history.RedisChannels` for many nodes."""

    #: "memory" or "redis".
    backend: str
    #: Appended and dropped counters.
    stats: HistoryStats

    def publish(self, channel: str, text: str) -> Entry[str] | None:
        """Retain ``text`` and hand it to every listener of ``channel`` (on every node);
        returns its entry when it is known at once (in memory), else None."""

    def listen(self, channel: str, listener: Listener) -> Closable:
        """Call ``listener(entry)`` for every message of ``channel`` from now on."""

    async def read(self, channel: str, start: Start) -> Replay[str]:
        """The retained messages of ``channel`` from ``start``."""


class _Handle:
    __slots__ = ("_hub", "channel", "listener")

    def __init__(self, hub: Channels, channel: str, listener: Listener) -> None:
        self._hub: Channels | None = hub
        self.channel = channel
        self.listener = listener

    def close(self) -> None:
        """Stop listening (idempotent)."""
        hub, self._hub = self._hub, None
        if hub is not None:
            hub._remove(self)


class Channels:
    """Named channels of text messages, each with bounded history (in memory).

    Args:
        limits: history bounds (:class:`~.store.HistoryLimits` defaults otherwise).
        clock: Unix time in seconds.
    """

    backend = "memory"

    def __init__(
        self, limits: HistoryLimits | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store: HistoryStore[str] = HistoryStore(limits)
        self.stats = self.store.stats
        self._clock = clock
        self._listeners: dict[str, list[_Handle]] = {}

    @property
    def channels(self) -> int:
        """Channels with history now."""
        return self.store.channels

    @property
    def messages(self) -> int:
        """Messages retained now."""
        return self.store.messages

    @property
    def bytes(self) -> int:
        """Bytes retained now."""
        return self.store.bytes

    def publish(self, channel: str, text: str) -> Entry[str]:
        """Retain ``text`` as the channel's next message and hand it to every listener.

        Raises:
            ValueError: the channel name is empty or longer than ``CHANNEL_NAME_LIMIT``.
        """
        check_channel(channel)
        size = len(text.encode("utf-8", "surrogatepass"))
        entry = self.store.append(channel, text, size, self._clock())
        for handle in tuple(self._listeners.get(channel, ())):
            try:
                handle.listener(entry)
            except Exception:
                log.exception("listener of channel %r failed", channel)
        return entry

    def listen(self, channel: str, listener: Listener) -> _Handle:
        """Call ``listener(entry)`` for every message published to ``channel`` from now on;
        ``close()`` the returned handle to stop."""
        handle = _Handle(self, channel, listener)
        self._listeners.setdefault(channel, []).append(handle)
        return handle

    async def read(self, channel: str, start: Start) -> Replay[str]:
        """The retained messages of ``channel`` from ``start``."""
        return self.store.read(channel, start, self._clock())

    def _remove(self, handle: _Handle) -> None:
        handles = self._listeners.get(handle.channel)
        if handles is not None and handle in handles:
            handles.remove(handle)
            if not handles:
                del self._listeners[handle.channel]


def check_channel(channel: str) -> None:
    """Raise ``ValueError`` unless ``channel`` is a usable channel name."""
    if not channel or len(channel) > CHANNEL_NAME_LIMIT:
        raise ValueError(f"a channel name has 1 to {CHANNEL_NAME_LIMIT} characters")
