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

The owner asks :meth:`SessionMachine.next_deadline`, arms one timer for it and calls
:meth:`SessionMachine.timer_fired` when it fires; early firings are harmless.

Outputs are pulled: :meth:`take_frames` returns wire frames (queued messages merged into
one ``a[...]``), :meth:`take_events` what the application handler must hear about.
A *raw* session (the plain ``/websocket`` route) has no SockJS framing: each message is
its own frame and there are no open, heartbeat or close frames.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from .frames import HEARTBEAT, OPEN, Close, encode, encode_messages

__all__ = [
    "SessionState",
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
        "_heartbeat_delay",
        "_disconnect_delay",
        "_pending",
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
        raw: bool = False,
    ) -> None:
        self.state = SessionState.NEW
        self.attached = False
        self.raw = raw
        #: The ``c[...]`` frame replayed to every receiver once the session is closed.
        self.close_frame: str | None = None
        #: Why the session closed (code and reason), once it has.
        self.closed_with: Close | None = None
        self._heartbeat_delay = heartbeat_delay
        self._disconnect_delay = disconnect_delay
        self._pending: list[str] = []  # quoted messages not yet in an ``a[...]`` frame
        self._frames: deque[str] = deque()  # wire frames in order
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

    def send(self, quoted: str) -> bool:
        """Queue one message (already :func:`quote`-d, or raw text for a raw session).

        Returns:
            True if queued, False if the session is already closed.
        """
        if self.state is SessionState.CLOSED:
            return False
        if self.raw:
            self._frames.append(quoted)
        else:
            self._pending.append(quoted)
        return True

    def close(self, code: int, reason: str) -> None:
        """The server closes the session; queued messages go out before the close frame."""
        self._close(Close(code, reason), queue_frame=True)

    def client_closed(self, code: int, reason: str) -> None:
        """The client ended the session (a WebSocket close); nothing more is sent."""
        self._close(Close(code, reason), queue_frame=False)

    def _close(self, frame: Close, *, queue_frame: bool) -> None:
        if self.state is SessionState.CLOSED:
            return
        was_open = self.state is SessionState.OPEN
        self.state = SessionState.CLOSED
        self.closed_with = frame
        self.close_frame = encode(frame)
        if queue_frame and not self.raw:
            self._flush_pending()
            self._frames.append(self.close_frame)
        else:
            self._pending.clear()
            if not queue_frame:
                self._frames.clear()
        if was_open:
            self._events.append(Closed(frame.code, frame.reason))

    def _flush_pending(self) -> None:
        if self._pending:
            self._frames.append(encode_messages(self._pending))
            self._pending = []

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
            taken = list(frames)
            frames.clear()
            return taken
        return [frames.popleft() for _ in range(limit)]

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
            if self.state is SessionState.OPEN and not self.raw:
                return self._last_output + self._heartbeat_delay
            return math.inf
        return self._detached_at + self._disconnect_delay

    def timer_fired(self, now: float) -> bool:
        """Advance the clocks to ``now``.

        Returns:
            True if the session has expired and must be forgotten.
        """
        if self.attached:
            if (
                self.state is SessionState.OPEN
                and not self.raw
                and now >= self._last_output + self._heartbeat_delay
            ):
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
