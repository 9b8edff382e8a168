"""The lifecycle of one SockJS session as a pure object.

Theory of operation
-------------------
A session is created by the first request that names an unknown session id (or by a
WebSocket connection) and lives through three states::

    NEW ──attach──▶ OPEN ──close / interrupt / expire / client close──▶ CLOSED

A *receiver* is whatever currently carries frames to the client: one HTTP polling or
streaming response, or a WebSocket. At most one receiver is attached at a time; a second
one gets ``c[2010,"Another connection still open"]`` (:attr:`Attach.BUSY`) and the session
is untouched. A session closed while no receiver was attached still delivers what it had
queued, then its close frame, to the next receivers; after that every new receiver gets the
stored close frame again (:attr:`Attach.GONE`) until the session is forgotten.

Two clocks, never one field doing both jobs:

* while a receiver is attached, a heartbeat ``h`` is due ``heartbeat_delay`` seconds after
  the last frame taken for the wire;
* while none is attached, the session expires ``disconnect_delay`` seconds after the last
  receiver went away. An attached session never expires, however idle.

and one more for slow consumers: a receiver reports when a write starts and ends
(:meth:`SessionMachine.begin_write`); a write still unfinished ``send_time_limit`` seconds
later marks the session *stalled*, which the slow-consumer policy then handles.

The owner asks :meth:`SessionMachine.next_deadline`, arms one timer for it and calls
:meth:`SessionMachine.timer_fired` when it fires; early firings are harmless.

Outbound messages wait in a queue bounded in messages and bytes (:class:`QueueLimits`).
A send that would overflow it, or that arrives while the session is stalled, is handled by
the policy: close the session with 4500 "Slow consumer" (the default, as Spring's
TERMINATE), drop the oldest queued messages, or drop the new one.

Outputs are pulled: :meth:`take_frames` returns wire frames (queued messages merged into
one ``a[...]``), :meth:`take_events` what the application handler must hear about.
A *raw* session (the plain ``/websocket`` route) has no SockJS framing: each message is
its own frame and there are no open, heartbeat or close frames.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .frames import HEARTBEAT, OPEN, Close, encode, encode_messages

__all__ = [
    "SessionState",
    "SlowConsumerPolicy",
    "QueueLimits",
    "Sent",
    "SLOW_CONSUMER",
    "Attach",
    "Opened",
    "Received",
    "Closed",
    "Event",
    "SessionMachine",
    "ANOTHER_CONNECTION",
    "INTERRUPTED",
    "TIMED_OUT",
]


class SessionState(enum.Enum):
    """Where a session is in its life."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class Attach(enum.Enum):
    """What :meth:`SessionMachine.attach` decided."""

    OK = "ok"  #: the receiver now carries this session's frames
    BUSY = "busy"  #: another receiver is attached: send ANOTHER_CONNECTION and end
    GONE = "gone"  #: the session is closed: send :attr:`SessionMachine.close_frame` and end


#: Sent to a second receiver while one is attached (the session goes on).
ANOTHER_CONNECTION = Close(2010, "Another connection still open")
#: The session's close when its receiver vanished mid-stream.
INTERRUPTED = Close(1002, "Connection interrupted")
#: The session's close when no receiver came back within ``disconnect_delay``.
TIMED_OUT = Close(1000, "Session timed out")
#: The session's close when its client does not keep up (policy ``close``); the code is
#: Spring's SESSION_NOT_RELIABLE.
SLOW_CONSUMER = Close(4500, "Slow consumer")


class SlowConsumerPolicy(enum.Enum):
    """What to do when a session's outbound queue is full or its writes are stuck."""

    CLOSE = "close"  #: close the session with 4500 "Slow consumer"
    DROP_OLDEST = "drop-oldest"  #: drop the oldest queued messages (keep the freshest)
    DROP_NEWEST = "drop-newest"  #: drop the message being sent


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Bounds of one session's outbound queue, and what happens past them."""

    max_messages: int = 1000
    max_bytes: int = 4 * 1024 * 1024
    send_time_limit: float = 10.0
    policy: SlowConsumerPolicy = SlowConsumerPolicy.CLOSE


class Sent(enum.Enum):
    """What :meth:`SessionMachine.send` did with a message."""

    QUEUED = "queued"
    DROPPED = "dropped"  #: dropped by the slow-consumer policy
    CLOSED = "closed"  #: the session is closed (already, or now by the policy)


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class Opened:
    """The session opened: call the handler's ``on_open``."""


@dataclass(frozen=True, slots=True)
class Received:
    """The client sent messages: call ``on_message`` for each, in order."""

    messages: list[str]


@dataclass(frozen=True, slots=True)
class Closed:
    """The session closed: call ``on_close`` with this code and reason."""

    code: int
    reason: str


Event = Opened | Received | Closed


class SessionMachine:
    """One session's state, queues and deadlines; see the module docstring."""

    __slots__ = (
        "state",
        "attached",
        "raw",
        "close_frame",
        "closed_with",
        "stalled",
        "drops",
        "abort_receiver",
        "_heartbeat_delay",
        "_disconnect_delay",
        "_limits",
        "_pending",
        "_pending_bytes",
        "_writing_since",
        "_frames",
        "_events",
        "_last_output",
        "_detached_at",
    )

    def __init__(
        self,
        now: float,
        *,
        heartbeat_delay: float,
        disconnect_delay: float,
        limits: QueueLimits | None = None,
        raw: bool = False,
    ) -> None:
        self.state = SessionState.NEW
        self.attached = False
        self.raw = raw
        #: The ``c[...]`` frame replayed to every receiver once the session is closed.
        self.close_frame: str | None = None
        #: Why the session closed (code and reason), once it has.
        self.closed_with: Close | None = None
        #: A write has been stuck for ``send_time_limit`` seconds.
        self.stalled = False
        #: Messages dropped by the slow-consumer policy since the owner last reset this.
        self.drops = 0
        #: The receiver must be cut off (its writes are stuck and the session closed).
        self.abort_receiver = False
        self._heartbeat_delay = heartbeat_delay
        self._disconnect_delay = disconnect_delay
        self._limits = limits or QueueLimits()
        self._pending: list[str] = []  # messages not yet in a wire frame
        self._pending_bytes = 0
        self._writing_since: float | None = None
        # Wire frames in order. Lists, not deques: they hold a frame or two at a time, and
        # an empty deque costs ten times an empty list in every idle session.
        self._frames: list[str] = []
        self._events: list[Event] = []
        self._last_output = now
        self._detached_at = now

    # -- receivers -------------------------------------------------------------------

    def attach(self, now: float) -> Attach:
        """A receiver wants to carry this session's frames."""
        if self.finished:
            return Attach.GONE
        if self.attached:
            return Attach.BUSY
        self.attached = True
        self._last_output = now
        if self.state is SessionState.NEW:
            self.state = SessionState.OPEN
            if not self.raw:
                self._frames.append(OPEN)
            self._events.append(Opened())
        return Attach.OK

    def detach(self, now: float) -> None:
        """The receiver finished its response normally; the expiry clock starts."""
        self.attached = False
        self._detached_at = now

    def interrupt(self, now: float) -> None:
        """The receiver went away before the server ended it: close with 1002."""
        self.detach(now)
        self._close(INTERRUPTED, queue_frame=False)

    # -- traffic -----------------------------------------------------------------------

    def receive(self, messages: list[str]) -> None:
        """The client sent ``messages``; ignored unless the session is open."""
        if self.state is SessionState.OPEN and messages:
            self._events.append(Received(messages))

    def send(self, quoted: str) -> Sent:
        """Queue one message (already :func:`quote`-d, or raw text for a raw session),
        applying the slow-consumer policy if the queue is full or the session stalled."""
        if self.state is SessionState.CLOSED:
            return Sent.CLOSED
        size = _size(quoted)
        limits = self._limits
        pending = self._pending
        if (
            self.stalled
            or len(pending) >= limits.max_messages
            or self._pending_bytes + size > limits.max_bytes
        ):
            policy = limits.policy
            if policy is SlowConsumerPolicy.CLOSE:
                # A receiver in the middle of a write may never finish it: cut it off.
                self.abort_receiver = self._writing_since is not None
                self._close(SLOW_CONSUMER, queue_frame=True, discard_pending=True)
                return Sent.CLOSED
            if policy is SlowConsumerPolicy.DROP_NEWEST or size > limits.max_bytes:
                self.drops += 1
                return Sent.DROPPED
            keep = 0 if self.stalled else limits.max_messages - 1
            while pending and (
                len(pending) > keep or self._pending_bytes + size > limits.max_bytes
            ):
                self._pending_bytes -= _size(pending.pop(0))
                self.drops += 1
        pending.append(quoted)
        self._pending_bytes += size
        return Sent.QUEUED

    @property
    def queued_bytes(self) -> int:
        """Bytes of messages queued and not yet in a wire frame (for logs and metrics)."""
        return self._pending_bytes

    def close(self, code: int, reason: str) -> None:
        """The server closes the session; queued messages go out before the close frame."""
        self._close(Close(code, reason), queue_frame=True)

    def client_closed(self, code: int, reason: str) -> None:
        """The client ended the session (a WebSocket close); nothing more is sent."""
        self._close(Close(code, reason), queue_frame=False)

    def _close(self, frame: Close, *, queue_frame: bool, discard_pending: bool = False) -> None:
        if self.state is SessionState.CLOSED:
            return
        was_open = self.state is SessionState.OPEN
        self.state = SessionState.CLOSED
        self.closed_with = frame
        self.close_frame = encode(frame)
        if discard_pending or not queue_frame:
            self.drops += len(self._pending) if discard_pending else 0
            self._pending = []
            self._pending_bytes = 0
        if not queue_frame:
            self._frames.clear()
        elif self.raw:
            self._flush_pending()
        else:
            self._flush_pending()
            self._frames.append(self.close_frame)
        if was_open:
            self._events.append(Closed(frame.code, frame.reason))

    def _flush_pending(self) -> None:
        if self._pending:
            if self.raw:
                self._frames.extend(self._pending)
            else:
                self._frames.append(encode_messages(self._pending))
            self._pending = []
            self._pending_bytes = 0

    def bypass(self, now: float) -> bool:
        """Whether a frame may go to the wire at once, skipping the queue: the session is
        open, attached and has nothing waiting. If so it counts as output at ``now``."""
        if (
            self.state is SessionState.OPEN
            and self.attached
            and not self._pending
            and not self._frames
            and self._writing_since is None
        ):
            self._last_output = now
            return True
        return False

    def begin_write(self, now: float) -> None:
        """The receiver started writing frames; the stuck-write clock runs."""
        self._writing_since = now

    def end_write(self) -> None:
        """The write finished: the client is reading again."""
        self._writing_since = None
        self.stalled = False

    # -- outputs -----------------------------------------------------------------------

    def has_frames(self) -> bool:
        """Whether :meth:`take_frames` would return anything."""
        return bool(self._frames or self._pending)

    def take_frames(self, now: float, limit: int = 0) -> list[str]:
        """Frames for the wire, oldest first; at most ``limit`` of them if it is > 0."""
        self._flush_pending()
        if not self._frames:
            return []
        self._last_output = now
        frames = self._frames
        if limit <= 0 or limit >= len(frames):
            self._frames = []
            return frames
        self._frames = frames[limit:]
        return frames[:limit]

    @property
    def finished(self) -> bool:
        """True once the session is closed and its close frame has been taken."""
        return self.state is SessionState.CLOSED and not self._frames

    def take_events(self) -> list[Event]:
        """What the application handler must hear about, oldest first."""
        events = self._events
        if events:
            self._events = []
        return events

    # -- time --------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When :meth:`timer_fired` next has something to do (``inf`` for never)."""
        if self.attached:
            deadline = math.inf
            if self.state is SessionState.OPEN:
                if not self.raw:
                    deadline = self._last_output + self._heartbeat_delay
                if self._writing_since is not None and not self.stalled:
                    deadline = min(deadline, self._writing_since + self._limits.send_time_limit)
            return deadline
        return self._detached_at + self._disconnect_delay

    def timer_fired(self, now: float) -> bool:
        """Advance the clocks to ``now``.

        Returns:
            True if the session has expired and must be forgotten.
        """
        if self.attached:
            if self.state is not SessionState.OPEN:
                return False
            since = self._writing_since
            if (
                since is not None
                and not self.stalled
                and now >= since + self._limits.send_time_limit
            ):
                self.stalled = True
                if self._limits.policy is SlowConsumerPolicy.CLOSE:
                    self.abort_receiver = True
                    self._close(SLOW_CONSUMER, queue_frame=False, discard_pending=True)
                    return False
            if not self.raw and now >= self._last_output + self._heartbeat_delay:
                # Frames still waiting (a receiver stuck in a write) count as output, so
                # the deadline moves on instead of firing again at once.
                self._last_output = now
                if not self.has_frames():
                    self._frames.append(HEARTBEAT)
            return False
        if now < self._detached_at + self._disconnect_delay:
            return False
        self._close(TIMED_OUT, queue_frame=False)
        return True
