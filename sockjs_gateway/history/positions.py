"""Where a reader starts in a channel's history, and where it stands: pure values.

A channel's messages are numbered by *offset*, 1, 2, 3, … in publish order, within an
*epoch*: an opaque string that changes whenever the history behind the numbers is lost
(the store restarted, or the channel was evicted and began again at 1). An offset is only
meaningful with its epoch, so every message carries both, and a reader that resumes says
both.

:class:`Start` is a reader's starting point. Its text form is RabbitMQ's
``x-stream-offset`` header (``first``, ``last``, ``next``, ``offset=N``, ``timestamp=T``),
which STOMP clients already know; :func:`parse_event_id` reads an EventSource
``Last-Event-ID`` (``<epoch>-<offset>``, the last event seen). :class:`Cursor` is what a
live subscriber keeps to admit each message once at the seam between replay and live
delivery.

This module imports nothing outside the standard library.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["Mode", "Start", "Position", "Cursor", "parse_stream_offset", "parse_event_id"]

_EPOCH = re.compile(r"[0-9A-Za-z_.:]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_SECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


class Mode(enum.Enum):
    """How :class:`Start` picks the first message to replay."""

    FIRST = "first"  #: the oldest message still retained
    LAST = "last"  #: the newest retained message (then live)
    NEXT = "next"  #: nothing retained: live messages only
    OFFSET = "offset"  #: the message at ``offset`` (inclusive) and after
    TIMESTAMP = "timestamp"  #: messages published at or after ``timestamp`` (Unix seconds)


@dataclass(frozen=True, slots=True)
class Start:
    """A reader's starting point in one channel.

    ``epoch`` (with ``OFFSET``) is the epoch the offset belongs to; when it is not the
    channel's epoch any more, the reader is told its recovery is incomplete.
    """

    mode: Mode = Mode.NEXT
    offset: int = 0
    timestamp: float = 0.0
    epoch: str | None = None

    @classmethod
    def after(cls, position: Position) -> Start:
        """Resume after the last message seen (``position``)."""
        return cls(Mode.OFFSET, position.offset + 1, epoch=position.epoch)

    @classmethod
    def of(cls, since: Position | Start | str | None) -> Start:
        """The starting point a subscriber asked for: None (live messages only), the
        :class:`Position` of the last message seen (resume after it), a :class:`Start`,
        or its ``x-stream-offset`` text.

        Raises:
            ValueError: a text that is not an ``x-stream-offset``.
        """
        if since is None:
            return cls(Mode.NEXT)
        if isinstance(since, Position):
            return cls.after(since)
        if isinstance(since, Start):
            return since
        return parse_stream_offset(since)

    def text(self) -> str:
        """The ``x-stream-offset`` form (without the epoch)."""
        if self.mode is Mode.OFFSET:
            return f"offset={self.offset}"
        if self.mode is Mode.TIMESTAMP:
            return f"timestamp={self.timestamp:g}"
        return str(self.mode.value)


@dataclass(frozen=True, slots=True)
class Position:
    """One message's place: its channel's epoch and its offset."""

    epoch: str
    offset: int

    def event_id(self) -> str:
        """The EventSource ``id:`` of the message (``<epoch>-<offset>``)."""
        return f"{self.epoch}-{self.offset}"


def parse_stream_offset(text: str, epoch: str | None = None) -> Start:
    """Read an ``x-stream-offset`` value (RabbitMQ streams' convention).

    Args:
        text: ``first``, ``last``, ``next``, ``offset=N`` (N >= 0) or ``timestamp=T`` (Unix
            seconds, as RabbitMQ takes them; a fraction is allowed).
        epoch: the epoch an ``offset=N`` belongs to, if the client sent one.

    Raises:
        ValueError: the text is none of these (the message names the accepted forms).
    """
    value = text.strip()
    if epoch is not None and _EPOCH.fullmatch(epoch) is None:
        raise ValueError("invalid epoch: 1 to 64 of [0-9A-Za-z_.:]")
    for mode in (Mode.FIRST, Mode.LAST, Mode.NEXT):
        if value == mode.value:
            return Start(mode, epoch=epoch)
    name, _, number = value.partition("=")
    if name == "offset" and _DIGITS.fullmatch(number):
        return Start(Mode.OFFSET, int(number), epoch=epoch)
    if name == "timestamp" and _SECONDS.fullmatch(number):
        return Start(Mode.TIMESTAMP, timestamp=float(number), epoch=epoch)
    raise ValueError(
        f"invalid stream offset {value[:40]!r}: use first, last, next, offset=N or timestamp=T"
    )


def parse_event_id(text: str) -> Position | None:
    """The position in an EventSource ``Last-Event-ID`` (``<epoch>-<offset>``), or None
    when the text is not one (a client's id from elsewhere is ignored, not an error)."""
    epoch, dash, number = text.strip().rpartition("-")
    if not dash or _EPOCH.fullmatch(epoch) is None or _DIGITS.fullmatch(number) is None:
        return None
    return Position(epoch, int(number))


class Cursor:
    """Where one live subscriber stands: admits each message once.

    A subscriber is registered for live messages *before* its history is read, so a
    message published in between can arrive both ways; the cursor admits a message only
    if it is past the last one delivered, or from another epoch (the history was lost and
    numbering began again, which the subscriber must see).
    """

    __slots__ = ("epoch", "next", "reset")

    def __init__(self, epoch: str | None, next_offset: int) -> None:
        self.epoch = epoch
        self.next = next_offset
        #: Set by :meth:`admit` when the message admitted began a new epoch after a known
        #: one: the history was lost, and the subscriber should be told (and resync).
        self.reset = False

    def admit(self, epoch: str, offset: int) -> bool:
        """Whether the message at ``(epoch, offset)`` is new to this subscriber; if so,
        the cursor moves past it."""
        same = epoch == self.epoch
        if offset < self.next and same:
            return False
        self.reset = not same and self.epoch is not None
        self.epoch, self.next = epoch, offset + 1
        return True
