"""The lifecycle of one SockJS session as a pure object.

Theory of operation
-------------------
A session is created by the first request that names an unknown session id (or by a
WebSocket connection) and lives through three states, with every move in one table
(:data:`TRANSITIONS`, in the manner of h11's ``_state.py``)::

    NEW ──attach──▶ OPEN ──any Cause (close, client close, interrupt, expiry,
     │                      queue full, stuck write)──▶ CLOSED
     └───────────── any Cause ──────────────────────────────▶ CLOSED

Each :class:`Cause` of a close is also a row of :data:`ENDINGS`: what becomes of the
queued messages and frames, which close frame is stored, whether discarded messages count
as slow-consumer drops and whether a receiver stuck in a write is cut off. So a close is
``_close(cause)``, and the rules live in two tables instead of in if-chains.

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

Outputs are pulled, with the verbs :class:`~sockjs_gateway.stomp.protocol.StompMachine`
uses too: :meth:`~SessionMachine.receive_data` takes the client's messages in,
:meth:`~SessionMachine.data_to_send` returns wire frames (queued messages merged into one
``a[...]``), :meth:`~SessionMachine.events_received` what happened, oldest first: what the
application handler must hear about (:class:`Opened`, :class:`Received`, :class:`Closed`)
and what the adapter must act on (:class:`Dropped` messages to count and log,
:class:`AbortReceiver`, :class:`Expired`). The adapter reads events; it never resets a
flag of the machine.
A *raw* session (the plain ``/websocket`` route) has no SockJS framing: each message is
its own frame and there are no open, heartbeat or close frames.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Literal

from .frames import HEARTBEAT, OPEN, Close, encode, encode_messages

__all__ = [
    "SessionState",
    "Cause",
    "TRANSITIONS",
    "ENDINGS",
    "Ending",
    "Dropped",
    "AbortReceiver",
    "Expired",
    "AppEvent",
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
    DISPLACED = "displaced"  #: queued, after dropping older ones (policy drop-oldest)
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


class Cause(enum.Enum):
    """Why a session closed: each is a row of :data:`ENDINGS`."""

    SERVER = "server"  #: the application (or the server) closed it
    CLIENT = "client"  #: the client's WebSocket close frame
    INTERRUPTED = "interrupted"  #: its receiver vanished mid-stream (1002)
    TIMED_OUT = "timed-out"  #: no receiver came back within ``disconnect_delay``
    QUEUE_FULL = "queue-full"  #: slow consumer: a send overflowed the queue (4500)
    STUCK_WRITE = "stuck-write"  #: slow consumer: a write outlived ``send_time_limit`` (4500)


@dataclass(frozen=True, slots=True)
class Closed:
    """The session closed: call ``on_close`` with this code and reason."""

    code: int
    reason: str
    cause: Cause


@dataclass(frozen=True, slots=True)
class Dropped:
    """The slow-consumer policy threw away ``count`` queued or new messages."""

    count: int


@dataclass(frozen=True, slots=True)
class AbortReceiver:
    """Cut the receiver off: its write is stuck and the session closed."""


@dataclass(frozen=True, slots=True)
class Expired:
    """No receiver came back within ``disconnect_delay``: forget the session."""


#: What the application handler hears about.
AppEvent = Opened | Received | Closed
#: Everything :meth:`SessionMachine.events_received` returns.
Event = Opened | Received | Closed | Dropped | AbortReceiver | Expired

_Trigger = Literal["attach"] | Cause

#: Every move of the lifecycle: (state, trigger) -> next state. A trigger not listed for
#: a state leaves it as it is (a second close, an attach to a closed session).
TRANSITIONS: dict[tuple[SessionState, _Trigger], SessionState] = {
    (SessionState.NEW, "attach"): SessionState.OPEN,
    **{(SessionState.NEW, cause): SessionState.CLOSED for cause in Cause},
    **{(SessionState.OPEN, cause): SessionState.CLOSED for cause in Cause},
}


@dataclass(frozen=True, slots=True)
class Ending:
    """How one :class:`Cause` closes a session (a row of :data:`ENDINGS`)."""

    #: The close it stores and reports; None: the code and reason the caller gave.
    close: Close | None
    #: Messages still queued go out before the close frame (else they are discarded).
    flush_queued: bool
    #: Frames already made stay and the ``c[...]`` frame follows them (else both are
    #: cleared: nobody is there to read them, or the client said goodbye itself).
    goodbye: bool
    #: A slow-consumer close: discarded messages count as :class:`Dropped`, and a receiver
    #: in the middle of a write is cut off (:class:`AbortReceiver`).
    slow_consumer: bool


#: One row per cause.
ENDINGS: dict[Cause, Ending] = {
    Cause.SERVER: Ending(None, flush_queued=True, goodbye=True, slow_consumer=False),
    Cause.CLIENT: Ending(None, flush_queued=False, goodbye=False, slow_consumer=False),
    Cause.INTERRUPTED: Ending(INTERRUPTED, flush_queued=False, goodbye=False, slow_consumer=False),
    Cause.TIMED_OUT: Ending(TIMED_OUT, flush_queued=False, goodbye=False, slow_consumer=False),
    Cause.QUEUE_FULL: Ending(SLOW_CONSUMER, flush_queued=False, goodbye=True, slow_consumer=True),
    Cause.STUCK_WRITE: Ending(SLOW_CONSUMER, flush_queued=False, goodbye=False, slow_consumer=True),
}


class SessionMachine:
    """One session's state, queues and deadlines; see the module docstring."""

    __slots__ = (
        "state",
        "attached",
        "raw",
        "close_frame",
        "closed_with",
        "_stalled",
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
        self._stalled = False  # a write has been stuck for send_time_limit seconds
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
            self.state = TRANSITIONS[self.state, "attach"]
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
        self._close(Cause.INTERRUPTED)

    # -- traffic -----------------------------------------------------------------------

    def receive_data(self, messages: list[str]) -> None:
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
            self._stalled
            or len(pending) >= limits.max_messages
            or self._pending_bytes + size > limits.max_bytes
        ):
            policy = limits.policy
            if policy is SlowConsumerPolicy.CLOSE:
                self._close(Cause.QUEUE_FULL)
                return Sent.CLOSED
            if policy is SlowConsumerPolicy.DROP_NEWEST or size > limits.max_bytes:
                self._events.append(Dropped(1))
                return Sent.DROPPED
            keep = 0 if self._stalled else limits.max_messages - 1
            dropped = 0
            while pending and (
                len(pending) > keep or self._pending_bytes + size > limits.max_bytes
            ):
                self._pending_bytes -= _size(pending.pop(0))
                dropped += 1
            pending.append(quoted)
            self._pending_bytes += size
            if dropped:
                self._events.append(Dropped(dropped))
                return Sent.DISPLACED
            return Sent.QUEUED
        pending.append(quoted)
        self._pending_bytes += size
        return Sent.QUEUED

    @property
    def queued_bytes(self) -> int:
        """Bytes of messages queued and not yet in a wire frame (for logs and metrics)."""
        return self._pending_bytes

    def close(self, code: int, reason: str) -> None:
        """The server closes the session; queued messages go out before the close frame."""
        self._close(Cause.SERVER, Close(code, reason))

    def client_closed(self, code: int, reason: str) -> None:
        """The client ended the session (a WebSocket close); nothing more is sent."""
        self._close(Cause.CLIENT, Close(code, reason))

    def _close(self, cause: Cause, given: Close | None = None) -> None:
        """Close for ``cause``, as its row of :data:`ENDINGS` says (``given``: the code
        and reason of a server or client close)."""
        was = self.state
        after = TRANSITIONS.get((was, cause), was)
        if after is was:
            return
        self.state = after
        ending = ENDINGS[cause]
        frame = given if given is not None else ending.close
        if frame is None:
            raise TypeError(f"a {cause.value} close needs a code and a reason")
        self.closed_with = frame
        self.close_frame = encode(frame)
        if not ending.flush_queued:
            if ending.slow_consumer and self._pending:
                self._events.append(Dropped(len(self._pending)))
            self._pending = []
            self._pending_bytes = 0
        if ending.goodbye:
            self._flush_pending()
            if not self.raw:
                self._frames.append(self.close_frame)
        else:
            self._frames.clear()
        if was is SessionState.OPEN:
            self._events.append(Closed(frame.code, frame.reason, cause))
        if ending.slow_consumer and self._writing_since is not None:
            # A receiver in the middle of a write may never finish it: cut it off.
            self._events.append(AbortReceiver())

    def _flush_pending(self) -> None:
        if self._pending:
            if self.raw:
                self._frames.extend(self._pending)
            else:
                self._frames.append(encode_messages(self._pending))
            self._pending = []
            self._pending_bytes = 0

    def claim_direct_write(self, now: float) -> bool:
        """Claim the wire for one frame that skips the queue, if the session is open,
        attached and has nothing waiting; the claim counts as output at ``now`` (the
        heartbeat clock restarts). Returns whether the claim was granted."""
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
        self._stalled = False

    # -- outputs -----------------------------------------------------------------------

    def has_frames(self) -> bool:
        """Whether :meth:`data_to_send` would return anything."""
        return bool(self._frames or self._pending)

    def data_to_send(self, now: float, limit: int = 0) -> list[str]:
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

    def events_received(self) -> list[Event]:
        """What happened since the last call, oldest first (see the module docstring)."""
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
                if self._writing_since is not None and not self._stalled:
                    deadline = min(deadline, self._writing_since + self._limits.send_time_limit)
            return deadline
        return self._detached_at + self._disconnect_delay

    def timer_fired(self, now: float) -> None:
        """Advance the clocks to ``now``: a heartbeat frame, a stuck write found, or the
        session expired (:class:`Expired`, then its close) may follow, as frames and
        events to pull like any other."""
        if self.attached:
            if self.state is not SessionState.OPEN:
                return
            since = self._writing_since
            if (
                since is not None
                and not self._stalled
                and now >= since + self._limits.send_time_limit
            ):
                self._stalled = True
                if self._limits.policy is SlowConsumerPolicy.CLOSE:
                    self._close(Cause.STUCK_WRITE)
                    return
            if not self.raw and now >= self._last_output + self._heartbeat_delay:
                # Frames still waiting (a receiver stuck in a write) count as output, so
                # the deadline moves on instead of firing again at once.
                self._last_output = now
                if not self.has_frames():
                    self._frames.append(HEARTBEAT)
            return
        if now < self._detached_at + self._disconnect_delay:
            return
        self._events.append(Expired())
        self._close(Cause.TIMED_OUT)
