"""``HistoryStore``: the retained messages of every channel, in memory, bounded.

Sans-I/O: time is an argument (Unix seconds, so that ``timestamp=T`` starts and ages
agree with clients' clocks) and nothing here imports asyncio. Appending is one deque
append per channel plus one on a shared timeline; nothing is copied or encoded.

Bounds, each counted in :attr:`HistoryStore.stats` ``dropped`` under its name when it
drops the oldest messages:

* ``max_messages`` per channel (``"count"``), ``max_age`` seconds (``"age"``),
  ``max_channel_bytes`` per channel (``"channel_bytes"``);
* ``max_total_bytes`` over every channel (``"total_bytes"``): the oldest messages of the
  whole store go first, whatever their channel;
* ``max_channels`` channels with history (``"channels"``): a new channel evicts the one
  published to least recently, with its numbering. If that channel comes back it begins
  again at offset 1 in a new epoch, so a reader of the old one learns its history is gone.

The timeline lists every retained message, oldest first, across channels: age and the
overall byte bound pop from its head. Messages dropped by a per-channel bound leave stale
rows behind, skipped when met and swept once they outnumber the live ones.
"""

from __future__ import annotations

import itertools
import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .positions import Mode, Start

__all__ = ["HistoryLimits", "HistoryStats", "HistoryStore", "Entry", "Replay"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """How much history is kept. Every field bounds memory a publisher can make the
    server hold; crossing one drops the oldest messages, never refuses a publish."""

    #: Messages kept per channel.
    max_messages: int = 1000
    #: Seconds a message is kept.
    max_age: float = 300.0
    #: Bytes kept per channel (message sizes as the caller counts them).
    max_channel_bytes: int = 1024 * 1024
    #: Bytes kept over every channel.
    max_total_bytes: int = 64 * 1024 * 1024
    #: Channels with history at once.
    max_channels: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_messages", "max_channel_bytes", "max_total_bytes", "max_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.max_age > 0:
            raise ValueError("max_age must be positive")


class HistoryStats:
    """Counters of one store (read by :mod:`sockjs_gateway.metrics`)."""

    __slots__ = ("appended", "dropped")

    def __init__(self) -> None:
        self.appended = 0
        #: Messages dropped from history, by the bound that dropped them.
        self.dropped: Counter[str] = Counter()


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """One retained message."""

    epoch: str
    offset: int
    time: float
    value: T
    size: int


@dataclass(frozen=True, slots=True)
class Replay(Generic[T]):
    """What a reader gets from :meth:`HistoryStore.read`.

    Attributes:
        entries: the retained messages from the starting point, oldest first.
        epoch: the channel's epoch (None while nothing was ever published to it).
        next_offset: the offset the channel's next message will get; a live message
            below it was in this replay (or before the starting point).
        recovered: False when messages the reader asked for are gone: the starting point
            is older than the history, or its epoch is not the channel's any more. The
            entries are then everything retained, and the reader should resync.
    """

    entries: list[Entry[T]]
    epoch: str | None
    next_offset: int
    recovered: bool


class _Channel(Generic[T]):
    __slots__ = ("name", "epoch", "entries", "bytes", "next_offset", "dropped_time")

    def __init__(self, name: str, epoch: str) -> None:
        self.name = name
        self.epoch = epoch
        self.entries: deque[Entry[T]] = deque()
        self.bytes = 0
        self.next_offset = 1
        self.dropped_time = -1.0  # publish time of the newest message dropped

    def first_offset(self) -> int:
        return self.entries[0].offset if self.entries else self.next_offset


def _random_epoch() -> str:
    return secrets.token_hex(4)


class HistoryStore(Generic[T]):
    """Retained messages by channel (see the module docstring).

    Args:
        limits: the bounds; :class:`HistoryLimits` defaults otherwise.
        new_epoch: makes a channel's epoch when it begins (random 8 hex digits).
    """

    def __init__(
        self, limits: HistoryLimits | None = None, *, new_epoch: Callable[[], str] = _random_epoch
    ) -> None:
        self.limits = limits or HistoryLimits()
        self.stats = HistoryStats()
        self._new_epoch = new_epoch
        self._channels: OrderedDict[str, _Channel[T]] = OrderedDict()  # least recent first
        self._timeline: deque[tuple[_Channel[T], Entry[T]]] = deque()
        self._live = 0  # entries retained (the timeline also holds stale rows)
        self._bytes = 0

    @property
    def channels(self) -> int:
        """Channels with history now (counted against ``max_channels``)."""
        return len(self._channels)

    @property
    def messages(self) -> int:
        """Messages retained now."""
        return self._live

    @property
    def bytes(self) -> int:
        """Bytes retained now (counted against ``max_total_bytes``)."""
        return self._bytes

    def epoch(self, channel: str) -> str | None:
        """The channel's epoch, or None if it has no history."""
        state = self._channels.get(channel)
        return None if state is None else state.epoch

    def append(self, channel: str, value: T, size: int, now: float) -> Entry[T]:
        """Retain ``value`` (``size`` bytes) as the channel's next message; returns it with
        its offset and epoch. Drops what the bounds say must go."""
        state = self._channels.get(channel)
        if state is None:
            state = self._begin(channel)
        else:
            self._channels.move_to_end(channel)
        entry = Entry(state.epoch, state.next_offset, now, value, size)
        state.next_offset += 1
        state.entries.append(entry)
        state.bytes += size
        self._timeline.append((state, entry))
        self._live += 1
        self._bytes += size
        self.stats.appended += 1
        limits = self.limits
        while len(state.entries) > limits.max_messages:
            self._drop_first(state, "count")
        while state.bytes > limits.max_channel_bytes:
            self._drop_first(state, "channel_bytes")
        self.expire(now)
        while self._bytes > limits.max_total_bytes:
            self._pop_timeline("total_bytes")
        if len(self._timeline) > 2 * self._live + 64:
            self._sweep()
        return entry

    def read(self, channel: str, start: Start, now: float) -> Replay[T]:
        """The channel's retained messages from ``start`` (see :class:`Replay`)."""
        self.expire(now)
        state = self._channels.get(channel)
        if state is None:
            # Nothing retained: a reader who had seen messages lost them.
            lost = start.epoch is not None or (start.mode is Mode.OFFSET and start.offset > 1)
            return Replay([], None, 1, not lost)
        entries = state.entries
        mode = start.mode
        if start.epoch is not None and start.epoch != state.epoch:
            return Replay(list(entries), state.epoch, state.next_offset, False)
        if mode is Mode.NEXT:
            return Replay([], state.epoch, state.next_offset, True)
        if mode is Mode.FIRST:
            return Replay(list(entries), state.epoch, state.next_offset, True)
        if mode is Mode.LAST:
            last = [entries[-1]] if entries else []
            return Replay(last, state.epoch, state.next_offset, True)
        if mode is Mode.TIMESTAMP:
            chosen = [e for e in entries if e.time >= start.timestamp]
            return Replay(
                chosen, state.epoch, state.next_offset, state.dropped_time < start.timestamp
            )
        wanted = start.offset
        if wanted > state.next_offset:  # beyond anything published: not this history
            return Replay(list(entries), state.epoch, state.next_offset, False)
        first = state.first_offset()
        chosen = list(itertools.islice(entries, max(0, wanted - first), None))
        return Replay(chosen, state.epoch, state.next_offset, wanted >= first)

    def expire(self, now: float) -> None:
        """Drop the messages older than ``max_age`` (called by every append and read)."""
        cutoff = now - self.limits.max_age
        timeline = self._timeline
        while timeline and timeline[0][1].time < cutoff:
            self._pop_timeline("age")

    # -- internals -----------------------------------------------------------------------

    def _begin(self, channel: str) -> _Channel[T]:
        while len(self._channels) >= self.limits.max_channels:
            _, evicted = self._channels.popitem(last=False)
            self.stats.dropped["channels"] += len(evicted.entries)
            self._live -= len(evicted.entries)
            self._bytes -= evicted.bytes
            evicted.entries.clear()  # its timeline rows are stale from now on
        state: _Channel[T] = _Channel(channel, self._new_epoch())
        self._channels[channel] = state
        return state

    def _drop_first(self, state: _Channel[T], reason: str) -> None:
        entry = state.entries.popleft()
        state.bytes -= entry.size
        state.dropped_time = entry.time
        self._live -= 1
        self._bytes -= entry.size
        self.stats.dropped[reason] += 1

    def _pop_timeline(self, reason: str) -> None:
        state, entry = self._timeline.popleft()
        if state.entries and state.entries[0] is entry:
            self._drop_first(state, reason)

    def _sweep(self) -> None:
        self._timeline = deque(
            (state, entry)
            for state, entry in self._timeline
            if state.entries
            and state.entries[0].offset <= entry.offset
            and self._channels.get(state.name) is state
        )
