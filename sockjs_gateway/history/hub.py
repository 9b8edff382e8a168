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
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .positions import Cursor, Start
from .store import Entry, HistoryLimits, HistoryStats, HistoryStore, Replay

__all__ = [
    "Channels",
    "ChannelHub",
    "Listener",
    "Listeners",
    "ListenerHandle",
    "Closable",
    "Subscriber",
    "catch_up",
    "CHANNEL_NAME_LIMIT",
]

log = logging.getLogger("sockjs_gateway.history")

#: Longest channel name accepted, in characters.
CHANNEL_NAME_LIMIT = 200
#: A listener gets every message of its channel, with its position.
Listener = Callable[[Entry[str]], None]

T = TypeVar("T")


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


def catch_up(
    replay: Replay[Any], entries: Sequence[Entry[T]], held: Sequence[Entry[T]] | None
) -> tuple[Cursor, list[Entry[T]]]:
    """The seam between a subscriber's replay and its live messages ("listen, then read,
    then flush"): the cursor it keeps from now on, and the entries to hand it now, in
    order: the replayed ``entries`` (``replay``'s, perhaps decoded), then the live ones
    ``held`` while the history was read, each once (one published between the listen and
    the read comes both ways).

    The SockJS channels, the EventSource endpoint and STOMP's hub topics all flush this
    way, so the rule that admits each message once is written here only.
    """
    cursor = Cursor(replay.epoch, entries[0].offset if entries else replay.next_offset)
    return cursor, [e for e in (*entries, *(held or ())) if cursor.admit(e.epoch, e.offset)]


class Subscriber(Generic[T]):
    """One subscriber of a listener (a session, a stream): its cursor, and the live
    messages held for it while its history is read."""

    __slots__ = ("cursor", "pending")

    def __init__(self) -> None:
        self.cursor = Cursor(None, 0)
        #: Live messages that arrived during the replay; None once :meth:`catch_up` ran.
        self.pending: list[Entry[T]] | None = []

    def catch_up(self, replay: Replay[Any], entries: Sequence[Entry[T]]) -> list[Entry[T]]:
        """The replay is read: what to hand over now (see :func:`catch_up`); from here on
        live messages go through :attr:`cursor`."""
        self.cursor, due = catch_up(replay, entries, self.pending)
        self.pending = None
        return due


P = TypeVar("P")


def _listener_failed(channel: str) -> None:
    log.exception("listener of channel %r failed", channel)


class ListenerHandle(Generic[P]):
    """What ``listen`` returns (and a backplane's ``subscribe``): ``close()`` stops its
    listener (idempotent)."""

    __slots__ = ("_owner", "channel", "listener")

    def __init__(self, owner: Listeners[P], channel: str, listener: Callable[[P], None]) -> None:
        self._owner: Listeners[P] | None = owner
        self.channel = channel
        self.listener = listener

    def close(self) -> None:
        """Stop listening (idempotent)."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.remove(self)


class Listeners(Generic[P]):
    """Callbacks by channel, and the one loop that hands them a message: the in-memory and
    Redis hubs keep their listeners here (``P`` an :class:`~.store.Entry`), and every
    backplane its node's subscribers (``P`` the payload bytes, ``backplane/fanout.py``).

    Delivery walks a snapshot of a channel's listeners, so a callback may add or remove
    listeners (itself or others) while a message is delivered (the bug of aio-libs sockjs
    #218 was iterating a live dict). A callback that raises is a local bug: it is logged
    (``on_error``), and the others still get the message.

    Args:
        on_empty: called with a channel that lost its last listener.
        on_first: called with a channel that gained its first listener.
        on_error: called with the channel, inside the ``except``, when a listener raised.
    """

    __slots__ = ("_by_channel", "_on_first", "_on_empty", "_on_error", "_closed")

    def __init__(
        self,
        on_empty: Callable[[str], None] | None = None,
        *,
        on_first: Callable[[str], None] | None = None,
        on_error: Callable[[str], None] = _listener_failed,
    ) -> None:
        self._by_channel: dict[str, list[ListenerHandle[P]]] = {}
        self._on_first, self._on_empty = on_first, on_empty
        self._on_error = on_error
        self._closed = False

    def __contains__(self, channel: str) -> bool:
        return channel in self._by_channel

    def channels(self) -> list[str]:
        """The channels that have listeners now."""
        return list(self._by_channel)

    def add(self, channel: str, listener: Callable[[P], None]) -> ListenerHandle[P]:
        """A new listener; its handle's ``close()`` removes it. After :meth:`clear`, a
        handle that gets nothing."""
        handle = ListenerHandle(self, channel, listener)
        if self._closed:
            handle._owner = None
            return handle
        handles = self._by_channel.setdefault(channel, [])
        handles.append(handle)
        if len(handles) == 1 and self._on_first is not None:
            self._on_first(channel)
        return handle

    def remove(self, handle: ListenerHandle[P]) -> None:
        handles = self._by_channel.get(handle.channel)
        if handles is not None and handle in handles:
            handles.remove(handle)
            if not handles:
                del self._by_channel[handle.channel]
                if self._on_empty is not None:
                    self._on_empty(handle.channel)

    def deliver(self, channel: str, message: P) -> None:
        """Hand ``message`` to every listener of ``channel`` now."""
        for handle in tuple(self._by_channel.get(channel, ())):
            try:
                handle.listener(message)
            except Exception:
                self._on_error(channel)

    def clear(self) -> None:
        """Forget every listener and take no more (the owner closed)."""
        self._closed = True
        for handles in self._by_channel.values():
            for handle in handles:
                handle._owner = None
        self._by_channel.clear()


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
        self._listeners: Listeners[Entry[str]] = Listeners()

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
        self._listeners.deliver(channel, entry)
        return entry

    def listen(self, channel: str, listener: Listener) -> ListenerHandle[Entry[str]]:
        """Call ``listener(entry)`` for every message published to ``channel`` from now on;
        ``close()`` the returned handle to stop."""
        return self._listeners.add(channel, listener)

    async def read(self, channel: str, start: Start) -> Replay[str]:
        """The retained messages of ``channel`` from ``start``."""
        return self.store.read(channel, start, self._clock())


def check_channel(channel: str) -> None:
    """Raise ``ValueError`` unless ``channel`` is a usable channel name."""
    if not channel or len(channel) > CHANNEL_NAME_LIMIT:
        raise ValueError(f"a channel name has 1 to {CHANNEL_NAME_LIMIT} characters")
