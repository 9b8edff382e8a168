"""The sessions of one endpoint: their machines, timers, receivers and handler calls.

Every change to a session goes through a method here, which then does the same things
(:meth:`SessionRegistry._after`): count what happened, hand new events to the session's
handler queue, wake (or cut off) the attached receiver, and re-arm the session's one timer
at ``machine.next_deadline()``. The timer is a ``loop.call_at`` handle that is only moved
earlier, never pushed later: a firing that finds nothing due just re-arms, so the hot path
(``send``) costs no timer work.

Handler hooks run in the session's own task, and the handler queue is bounded
(:mod:`.hooks`, whose :class:`~.hooks.HookRunner` this registry is).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .. import logs
from ..handler import Handler
from ..info import ConnectionInfo
from ..options import SockJSOptions
from ..protocol.escaping import quote
from ..protocol.frames import encode_message
from ..protocol.rfc6455 import text_frame
from ..protocol.state import (
    AbortReceiver,
    Attach,
    Cause,
    Closed,
    Dropped,
    Event,
    Expired,
    Opened,
    QueueLimits,
    Sent,
    SessionMachine,
    SessionState,
    SlowConsumerPolicy,
)
from .hooks import EAGER_TASKS, HookRunner, SessionRecord
from .session import Receiver, Session

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = [
    "SessionRegistry",
    "rearm",
    "EndpointStats",
    "HANDLER_ERROR",
    "GOING_AWAY",
    "CONNECTION_LOST",
    "log_failure",
]

log = logging.getLogger("sockjs_gateway")

#: Close code and reason when a handler hook raised.
HANDLER_ERROR = (1011, "Internal error")
#: Close code and reason every open session gets when the application shuts down.
GOING_AWAY = (1001, "Going away")
#: Close code and reason when a WebSocket's connection ends without a close frame.
CONNECTION_LOST = (1006, "Connection lost")


class EndpointStats:
    """Cumulative counters of one endpoint (sessions by transport, traffic, trouble)."""

    __slots__ = (
        "opened",
        "closed",
        "messages_in",
        "messages_out",
        "bytes_in",
        "bytes_out",
        "slow_consumer_closes",
        "slow_consumer_drops",
        "session_timeouts",
        "heartbeat_timeouts",
        "handler_errors",
        "refused",
    )

    def __init__(self) -> None:
        self.opened: Counter[str] = Counter()  # by transport
        self.closed: Counter[str] = Counter()  # by transport
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.slow_consumer_closes = 0
        self.slow_consumer_drops = 0
        self.session_timeouts = 0  # no receiver came back within disconnect_delay
        self.heartbeat_timeouts = 0  # raw WebSocket pings that got no pong
        self.handler_errors = 0
        # by reason: host, origin, auth, capacity, body_timeout
        self.refused: Counter[str] = Counter()


def rearm(
    loop: asyncio.AbstractEventLoop,
    timer: asyncio.TimerHandle | None,
    deadline: float,
    callback: Callable[..., object],
    *args: Any,
) -> asyncio.TimerHandle | None:
    """The one timer to hold for ``deadline``: a timer is only ever moved earlier.

    ``timer`` itself when it fires no later than ``deadline`` (or there is no deadline,
    ``inf``): a firing that finds nothing due re-arms for the real deadline, so pushing a
    deadline later (every frame sent moves the heartbeat) costs no timer work. Else a new
    ``loop.call_at(deadline, callback, *args)``, with ``timer`` cancelled. Sessions here
    and STOMP connections (``stomp/app.py``) both keep their clock this way.
    """
    if math.isinf(deadline) or (timer is not None and timer.when() <= deadline):
        return timer
    if timer is not None:
        timer.cancel()
    return loop.call_at(deadline, callback, *args)


class SessionRegistry(HookRunner):
    """Owns every session of one endpoint (never module-global)."""

    def __init__(self, endpoint: Endpoint, handler: Handler, options: SockJSOptions) -> None:
        super().__init__(handler, options)
        self._endpoint = endpoint
        self._options = options
        self._limits = QueueLimits(
            max_messages=options.max_queued_messages,
            max_bytes=options.max_queued_bytes,
            send_time_limit=options.send_time_limit,
            policy=SlowConsumerPolicy(options.slow_consumer),
        )
        self._by_id: dict[str, Session] = {}
        # Every live session (in the order they opened) and what the registry keeps for it.
        self._live: dict[Session, SessionRecord] = {}
        self._gone = SessionRecord()  # stands in for any forgotten session's record
        #: The loop's clock, for every message sent (see _clock_of); _now until it is bound.
        self._clock: Callable[[], float] = self._now
        #: Called with each session as it is forgotten (channel subscriptions end there).
        self.forget_hooks: list[Callable[[Session], None]] = []
        #: The endpoint's counters.
        self.stats = EndpointStats()
        #: Called with every HTTP session forgotten (the relay frees its ownership).
        self.on_forget: Callable[[Session], None] | None = None

    # -- lookup ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._live))

    @property
    def full(self) -> bool:
        """True when no new session may be opened (``max_sessions`` reached)."""
        return len(self._live) >= self._options.max_sessions

    def get(self, session_id: str) -> Session | None:
        """The HTTP-transport session with this id, if it is known."""
        return self._by_id.get(session_id)

    def record(self, session: Session) -> SessionRecord | None:
        """What the registry keeps for ``session`` (None once it is forgotten): for tests
        and debugging, which check that timers and tasks are gone."""
        return self._live.get(session)

    def _now(self) -> float:
        """The loop's time; the first call binds the registry to the running loop."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._clock = _clock_of(loop)
        return loop.time()

    def create(
        self,
        session_id: str,
        info: ConnectionInfo,
        *,
        websocket: bool = False,
        raw: bool = False,
        principal: Any = None,
    ) -> Session:
        """A new session. HTTP sessions are found by id; WebSocket sessions live as long as
        their socket and may share an id (the protocol allows it), so they are not."""
        machine = SessionMachine(
            self._now(),
            heartbeat_delay=self._options.heartbeat_delay,
            disconnect_delay=self._options.disconnect_delay,
            limits=self._limits,
            raw=raw,
        )
        session = Session(session_id, info, self._endpoint, self, machine, principal)
        self._live[session] = SessionRecord()
        if not websocket:
            self._by_id[session_id] = session
        return session

    # -- receivers ---------------------------------------------------------------------

    def attach(self, session: Session, receiver: Receiver) -> Attach:
        """Let ``receiver`` carry the session's frames, if the machine agrees."""
        result = session.machine.attach(self._clock())  # bound by create()
        if result is Attach.OK:
            session.receiver = receiver
        self._after(session, eager=True)
        return result

    def detach(self, session: Session) -> None:
        """The receiver ended its response normally."""
        session.receiver = None
        session.machine.detach(self._clock())
        self._after(session, eager=True)

    def take_waiting(self, session: Session) -> list[str]:
        """A poll's answer, if one is waiting: the oldest frame of an open session that no
        receiver holds, taken as :meth:`attach`, ``data_to_send(limit=1)`` and
        :meth:`detach` would take it, without their bookkeeping. Else ``[]``, and the poll
        attaches as usual. (Under load most polls find their frame waiting.)"""
        machine = session.machine
        if machine.state is not SessionState.OPEN or machine.attached or not machine.has_frames():
            return []
        now = self._clock()
        frames = machine.data_to_send(now, limit=1)
        machine.detach(now)
        self._arm(session)
        return frames

    def interrupt(self, session: Session) -> None:
        """The receiver's connection went away: the session closes with 1002."""
        session.receiver = None
        session.machine.interrupt(self._now())
        self._after(session, eager=True)

    def begin_write(self, session: Session) -> None:
        """The receiver starts writing: a write stuck past ``send_time_limit`` is a slow
        consumer."""
        session.machine.begin_write(self._now())
        self._arm(session)

    def end_write(self, session: Session) -> None:
        """The receiver's write finished (its bytes are counted into ``bytes_out`` by the
        receiver's own writer, the one place that knows them)."""
        session.machine.end_write()

    def forget(self, session: Session) -> None:
        """Drop a session for good (its socket is gone, or it expired)."""
        record = self._live.pop(session, None)
        if record is not None and record.timer is not None:
            record.timer.cancel()
            record.timer = None
        session.receiver = None
        if self._by_id.get(session.id) is session:
            del self._by_id[session.id]
            if self.on_forget is not None:
                self.on_forget(session)
        for hook in self.forget_hooks:
            hook(session)

    # -- traffic -----------------------------------------------------------------------

    async def deliver(self, session: Session, messages: list[str], size: int) -> None:
        """The client sent ``messages`` (``size`` bytes on the wire). Waits while the
        session's handler queue is full, so a client cannot outrun its handler."""
        await self.room(session)
        self.deliver_now(session, messages, size)

    def upstream(self, session: Session) -> asyncio.Lock:
        """The lock an upstream request (``xhr_send``, ``jsonp_send``) of ``session``
        holds while it reads and delivers its body, so they take turns."""
        record = self._live.get(session)
        if record is None:  # forgotten meanwhile: its late requests still take turns
            record = self._gone
        lock = record.upstream
        if lock is None:
            lock = record.upstream = asyncio.Lock()
        return lock

    async def room(self, session: Session) -> None:
        """Wait until the session's handler queue (and the endpoint's) has room."""
        while (space := self.wait_for_space(session)) is not None:
            await space

    def wait_for_space(self, session: Session) -> asyncio.Future[None] | None:
        """None if the session's handler queue has room (or the session is not open);
        else a future resolved once it has. A connection that cannot wait stops reading
        until then.

        Room means: fewer than ``max_inbound_messages`` messages and fewer than
        ``max_inbound_bytes`` bytes wait for this session's handler, and fewer than
        ``max_inbound_bytes_total`` bytes wait for every handler of the endpoint.
        """
        record = self._live.get(session)
        if record is None or session.machine.state is not SessionState.OPEN:
            return None
        return self._room_for(record)

    def handling(self, session: Session) -> bool:
        """Whether the session's handler has messages it has not finished with: its task
        is about to run them, or is running them. A poll that comes meanwhile lets that
        task go first (see ``http.downstream``)."""
        record = self._live.get(session)
        return record is not None and record.inbound > 0

    def deliver_now(
        self, session: Session, messages: list[str], size: int
    ) -> asyncio.Future[None] | None:
        """Queue ``messages`` for the handler at once.

        Returns:
            What :meth:`wait_for_space` returns now: None while the handler queue has
            room, else a future the caller waits for before it reads more.
        """
        if session.machine.state is not SessionState.OPEN or not messages:
            return None
        try:  # a subscript, not .get(): this is every message's path (callgrind)
            record = self._live[session]
        except KeyError:  # an open session forgotten (shutdown): nobody will read it
            return None
        count = len(messages)
        stats = self.stats
        stats.messages_in += count
        stats.bytes_in += size
        record.inbound += count
        record.inbound_bytes += size
        self._inbound_bytes += size
        if record.consuming:
            waiting = record.wakeup
            if waiting is not None:  # a sleeping task (Python 3.11), its inbox empty
                record.wakeup = None
                waiting.set_result((messages, size))
            else:
                record.inbox.append((messages, size))  # handled after what is queued
        elif EAGER_TASKS:  # _start, inlined: this is every message's path
            record.consuming = True
            task = asyncio.Task(  # type: ignore[call-arg,unused-ignore]
                self._run(session, record, messages, size),
                loop=self._loop,
                context=record.context,
                eager_start=True,
            )
            if not task.done():
                record.task = task
        else:
            self._start(session, record, messages, size, eager=True)
        if (
            record.inbound < self._max_inbound
            and record.inbound_bytes < self._max_inbound_bytes
            and self._inbound_bytes < self._max_inbound_total
        ):
            return None
        return self._room_for(record)

    def send(self, session: Session, message: str) -> bool:
        """Send one application message to ``session``: straight to the wire as its own
        frame when the session's WebSocket is open, idle and reading, else queued."""
        machine = session.machine
        wire = message if machine.raw else quote(message)
        receiver = session.receiver
        # "a[" + wire + "]" is encode_message(wire), inlined: this is every message's path.
        if (
            receiver is not None
            and receiver.frames_direct
            and machine.claim_direct_write(self._clock())
            and receiver.write_direct(text_frame(wire if machine.raw else "a[" + wire + "]"))
        ):
            self.stats.messages_out += 1
            return True
        return self._queue(session, wire)

    def _queue(self, session: Session, wire: str) -> bool:
        machine = session.machine
        outcome = machine.send(wire)
        if outcome is Sent.QUEUED:
            self.stats.messages_out += 1
            if session.receiver is not None:
                session.receiver.wake()
            return True
        self._after(session)  # events to read: drops, or the close
        if outcome is Sent.DISPLACED:
            self.stats.messages_out += 1
            return True
        return False

    def close(self, session: Session, code: int, reason: str) -> None:
        """The server closes ``session`` with a close frame."""
        session.machine.close(code, reason)
        self._after(session)

    def client_closed(self, session: Session, code: int, reason: str) -> None:
        """The client closed ``session`` (a WebSocket close frame, a protocol error, or the
        connection gone); nothing happens if the session is closed already."""
        if session.machine.state is SessionState.CLOSED:
            return
        session.machine.client_closed(code, reason)
        self._after(session, eager=True)

    def broadcast(self, message: str) -> int:
        """Send ``message`` to every open session, quoting it once; never waits.

        Returns:
            How many sessions it was queued for.
        """
        return self.multicast(list(self._live), message)

    def multicast(self, sessions: Iterable[Session], message: str) -> int:
        """Send ``message`` to each of ``sessions`` (of this endpoint), quoting it once and
        building each kind of WebSocket frame once; never waits.

        Returns:
            How many sessions it was queued for.
        """
        quoted = quote(message)
        sockjs_frame: bytes | None = None  # the WebSocket frame, built once for everyone
        raw_frame: bytes | None = None
        now = self._now()
        count = 0
        for session in sessions:
            machine = session.machine
            if machine.state is not SessionState.OPEN:
                continue
            receiver = session.receiver
            if receiver is not None and machine.claim_direct_write(now):
                if machine.raw:
                    raw_frame = raw_frame or text_frame(message)
                    frame = raw_frame
                else:
                    sockjs_frame = sockjs_frame or text_frame(encode_message(quoted))
                    frame = sockjs_frame
                if receiver.write_direct(frame):
                    self.stats.messages_out += 1
                    count += 1
                    continue
            if self._queue(session, message if machine.raw else quoted):
                count += 1
        return count

    async def shutdown(self) -> None:
        """Close every session with 1001 "Going away", run the close hooks, stop timers."""
        code, reason = GOING_AWAY
        for session in list(self._live):
            if session.machine.state is not SessionState.CLOSED:
                self.close(session, code, reason)
        tasks = [r.task for r in list(self._live.values()) if r.task is not None]
        if tasks:
            # Close hooks get disconnect_delay to finish; a hook stuck past that is
            # cancelled, whether or not its session was forgotten meanwhile.
            await asyncio.wait(tasks, timeout=self._options.disconnect_delay)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for session in list(self._live):
            self.forget(session)

    # -- the one place that follows every change --------------------------------------

    def _after(self, session: Session, *, eager: bool = False) -> None:
        """Follow a change to ``session``. ``eager``: the change came from the network or
        a timer, not from application code, so new hooks may start in this very step."""
        machine = session.machine
        # Taken first: an Expired event forgets the session, and its last hooks still run.
        record = self._live.get(session)
        abort = False
        events = machine.events_received()
        if events:
            hooks, abort = self._read_events(session, record, events)
            if hooks and record is not None:
                self._hand_over(session, record, hooks, eager=eager)
        receiver = session.receiver
        if receiver is not None:
            if abort:
                receiver.abort()
            elif machine.has_frames() or machine.state is SessionState.CLOSED:
                receiver.wake()
        if events:
            record = self._live.get(session)  # an Expired event forgot it: no timer then
        if record is not None:  # the record in hand: every poll passes here
            self._arm_record(session, record)

    def _read_events(
        self, session: Session, record: SessionRecord | None, events: list[Event]
    ) -> tuple[list[Event], bool]:
        """Count, log and act on the machine's events; return those for the hooks, and
        whether the receiver must be cut off. Drops are summed into one log line."""
        stats = self.stats
        hooks: list[Event] = []
        abort = False
        dropped = 0
        slow: Cause | None = None
        for event in events:
            if isinstance(event, Dropped):
                dropped += event.count
            elif isinstance(event, AbortReceiver):
                abort = True
            elif isinstance(event, Expired):
                self.forget(session)
            else:
                hooks.append(event)
                if isinstance(event, Opened):
                    stats.opened[session.info.transport] += 1
                elif isinstance(event, Closed):
                    stats.closed[session.info.transport] += 1
                    if event.cause is Cause.QUEUE_FULL or event.cause is Cause.STUCK_WRITE:
                        slow = event.cause
                    elif event.cause is Cause.TIMED_OUT:
                        stats.session_timeouts += 1
                    space = record.space if record is not None else None
                    if space is not None and not space.done():
                        space.set_result(None)
        if dropped:
            stats.slow_consumer_drops += dropped
            logs.slow_consumer_dropped(session, dropped, session.machine.queued_bytes)
        if slow is not None:
            stats.slow_consumer_closes += 1
            logs.slow_consumer_closed(session, stalled=slow is Cause.STUCK_WRITE)
        return hooks, abort

    def _arm(self, session: Session) -> None:
        record = self._live.get(session)
        if record is not None:  # forgotten: no timer any more
            self._arm_record(session, record)

    def _arm_record(self, session: Session, record: SessionRecord) -> None:
        """Move the session's one timer to the machine's next deadline, if earlier."""
        loop = self._loop or asyncio.get_running_loop()
        deadline = session.machine.next_deadline()
        record.timer = rearm(loop, record.timer, deadline, self._on_timer, session)

    def _on_timer(self, session: Session) -> None:
        record = self._live.get(session)
        if record is None:
            return
        record.timer = None
        self.retire(record)  # a task asleep since the last firing, if any (3.11)
        session.machine.timer_fired(self._now())
        self._after(session, eager=True)  # an Expired event forgets the session

    # -- what the hook runner reports --------------------------------------------------

    def _hook_failed(self, session: Session, name: str) -> None:
        """A hook raised (or returned what cannot be awaited): count and log it once, and
        close the session with 1011, whose ``on_close`` then runs in this same task."""
        self.stats.handler_errors += 1
        log.exception(
            "%s failed in session %r (%s); closing it with 1011",
            name,
            session.id,
            session.info.transport,
        )
        if name != "on_close":
            self.close(session, *HANDLER_ERROR)


def _clock_of(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, or ``time.monotonic`` itself where ``loop.time`` is asyncio's own,
    which returns ``time.monotonic()``: the same clock for one Python call less per
    message sent (uvloop and any other loop keep their own ``time``)."""
    if getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


def log_failure(task: asyncio.Task[Any]) -> None:
    """Done callback for a task the server starts whose coroutine does not log its own
    errors (WebSocket flushes): expected errors are handled inside it, so an exception
    here is a bug of ours, and is logged rather than lost."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("task %s failed", task.get_name(), exc_info=error)
