"""What a networked backplane does with messages it cannot send yet, and how long it
waits before trying to connect again. Pure: no I/O, no clock, no randomness of its own.

Outage policy: messages for other nodes wait in an :class:`Outbox` bounded in count and in
bytes. When a new message does not fit, the *oldest* waiting ones are dropped (and
counted): after an outage the freshest state is the most useful, as with the
``drop-oldest`` slow-consumer policy. A message larger than the whole byte bound is
dropped itself. The same bound caps memory when Redis is up but slower than the
publishers.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Outbox", "backoff_delay"]


class Outbox:
    """Messages published on this node and not yet handed to the bus, oldest first.

    Args:
        max_messages: messages held at most.
        max_bytes: bytes of payload (channel included) held at most.
    """

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ValueError("the outbox bounds must be at least 1")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._items: deque[tuple[bytes, bytes]] = deque()
        self._bytes = 0
        #: Messages ever pushed, and ever removed (taken or dropped): a flush waits until
        #: ``removed`` reaches the ``pushed`` it saw.
        self.pushed = 0
        self.removed = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._bytes

    def push(self, channel: bytes, data: bytes) -> int:
        """Add a message; returns how many messages were dropped to keep the bounds."""
        self.pushed += 1
        size = len(channel) + len(data)
        if size > self.max_bytes:
            self.removed += 1
            return 1
        dropped = 0
        while self._items and (
            len(self._items) >= self.max_messages or self._bytes + size > self.max_bytes
        ):
            old_channel, old_data = self._items.popleft()
            self._bytes -= len(old_channel) + len(old_data)
            dropped += 1
        self._items.append((channel, data))
        self._bytes += size
        self.removed += dropped
        return dropped

    def take(self, max_messages: int, max_bytes: int) -> list[tuple[bytes, bytes]]:
        """Remove and return the oldest messages: at most ``max_messages``, and no more than
        ``max_bytes`` unless the first alone is larger."""
        batch: list[tuple[bytes, bytes]] = []
        size = 0
        items = self._items
        while items and len(batch) < max_messages:
            channel, data = items[0]
            item_size = len(channel) + len(data)
            if batch and size + item_size > max_bytes:
                break
            items.popleft()
            batch.append((channel, data))
            size += item_size
        self._bytes -= size
        self.removed += len(batch)
        return batch

    def clear(self) -> int:
        """Drop everything; returns how many messages that was."""
        count = len(self._items)
        self._items.clear()
        self._bytes = 0
        self.removed += count
        return count


def backoff_delay(failures: int, initial: float, cap: float, jitter: float) -> float:
    """Seconds to wait before the next connection attempt.

    Capped exponential backoff: ``initial * 2**(failures - 1)``, at most ``cap``, scaled by
    ``0.5 + jitter / 2`` so that nodes which lost Redis together do not all come back in
    the same millisecond.

    Args:
        failures: consecutive failures so far (1 for the first).
        initial: the first delay, in seconds.
        cap: the largest delay, in seconds.
        jitter: a number in [0, 1), e.g. ``random.random()``.
    """
    exponent = min(max(failures, 1) - 1, 32)  # 2**32 * any sane initial is past any cap
    return min(cap, initial * 2.0**exponent) * (0.5 + jitter / 2)
