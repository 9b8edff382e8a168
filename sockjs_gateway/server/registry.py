"""The sessions of one endpoint: their machines, timers, receivers and handler calls.

Every change to a session goes through a method here, which then does the same things
(:meth:`SessionRegistry._after`): count what happened, hand new events to the session's
handler queue, wake (or cut off) the attached receiver, and re-arm the session's one timer
at ``machine.next_deadline()``. The timer is a ``loop.call_at`` handle that is only moved
earlier, never pushed later: a firing that finds nothing due just re-arms, so the hot path
(``send``) costs no timer work.

Handler hooks run in one consumer per session that drains the session's event queue, so
a slow hook never blocks heartbeats, other sessions or the request that delivered the
message, and hooks of one session run strictly in order. Hooks start *eagerly*: messages
for an idle session go straight to ``on_message`` (no event, no queue), and only a hook
that really awaits something gets a task to finish in, which then takes the rest (what
Python 3.12's eager task factory does; we support 3.11). An echo or broadcast hook, which
never waits, so costs no task and no queueing per message. That queue is
bounded (``max_inbound_messages``): past it, the request or WebSocket that brings more
messages waits, which pushes back on the client instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Coroutine, Iterator
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from ..handler import ConnectionInfo, Handler
from ..metrics import EndpointStats
from ..options import SockJSOptions
from ..protocol.escaping import quote
from ..protocol.frames import encode_messages
from ..protocol.state import (
    SLOW_CONSUMER,
    TIMED_OUT,
    Attach,
    Closed,
    Event,
    Opened,
    QueueLimits,
    Received,
    Sent,
    SessionMachine,
    SessionState,
    SlowConsumerPolicy,
)
from .session import Receiver, Session
from .wsframe import text_frame

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["SessionRegistry", "HANDLER_ERROR", "GOING_AWAY", "CONNECTION_LOST"]

log = logging.getLogger("sockjs_gateway")

#: Close code and reason when a handler hook raised.
HANDLER_ERROR = (1011, "Internal error")
#: Close code and reason every open session gets when the application shuts down.
GOING_AWAY = (1001, "Going away")
#: Close code and reason when a WebSocket's connection ends without a close frame.
CONNECTION_LOST = (1006, "Connection lost")


class SessionRegistry:
    """Owns every session of one endpoint (never module-global)."""

    def __init__(self, endpoint: Endpoint, handler: Handler, options: SockJSOptions) -> None:
        self._endpoint = endpoint
        self._handler = handler
        self._options = options
        self._limits = QueueLimits(
            max_messages=options.max_queued_messages,
            max_bytes=options.max_queued_bytes,
            send_time_limit=options.send_time_limit,
            policy=SlowConsumerPolicy(options.slow_consumer),
        )
        self._max_inbound = options.max_inbound_messages
        self._by_id: dict[str, Session] = {}
        self._live: dict[Session, None] = {}  # insertion-ordered set of every session
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The endpoint's counters.
        self.stats = EndpointStats()

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

    def _now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

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
        self._live[session] = None
        if not websocket:
            self._by_id[session_id] = session
        return session

    # -- receivers ---------------------------------------------------------------------

    def attach(self, session: Session, receiver: Receiver) -> Attach:
        """Let ``receiver`` carry the session's frames, if the machine agrees."""
        result = session.machine.attach(self._now())
        if result is Attach.OK:
            session.receiver = receiver
        self._after(session)
        return result

    def detach(self, session: Session) -> None:
        """The receiver ended its response normally."""
        session.receiver = None
        session.machine.detach(self._now())
        self._after(session)

    def interrupt(self, session: Session) -> None:
        """The receiver's connection went away: the session closes with 1002."""
        session.receiver = None
        session.machine.interrupt(self._now())
        self._after(session)

    def begin_write(self, session: Session) -> None:
        """The receiver starts writing: a write stuck past ``send_time_limit`` is a slow
        consumer."""
        session.machine.begin_write(self._now())
        self._arm(session)

    def end_write(self, session: Session, written: int) -> None:
        """The receiver's write of ``written`` bytes finished."""
        session.machine.end_write()
        self.stats.bytes_out += written

    def forget(self, session: Session) -> None:
        """Drop a session for good (its socket is gone, or it expired)."""
        if session._timer is not None:
            session._timer.cancel()
            session._timer = None
        session.receiver = None
        self._live.pop(session, None)
        if self._by_id.get(session.id) is session:
            del self._by_id[session.id]

    # -- traffic -----------------------------------------------------------------------

    async def deliver(self, session: Session, messages: list[str], size: int) -> None:
        """The client sent ``messages`` (``size`` bytes on the wire). Waits while the
        session's handler queue is full, so a client cannot outrun its handler."""
        while (space := self.wait_for_space(session)) is not None:
            await space
        self.deliver_now(session, messages, size)

    def wait_for_space(self, session: Session) -> asyncio.Future[None] | None:
        """None if the session's handler queue has room (or the session is not open);
        else a future resolved once it has. A connection that cannot wait stops reading
        until then."""
        if session._inbound < self._max_inbound or session.machine.state is not SessionState.OPEN:
            return None
        waiter = session._space
        if waiter is None or waiter.done():
            waiter = session._space = asyncio.get_running_loop().create_future()
        return waiter

    def deliver_now(self, session: Session, messages: list[str], size: int) -> None:
        """Queue ``messages`` for the handler at once (the caller heeds
        :meth:`wait_for_space` before it reads more)."""
        machine = session.machine
        if machine.state is not SessionState.OPEN or not messages:
            return
        stats = self.stats
        stats.messages_in += len(messages)
        stats.bytes_in += size
        if not session._consuming:
            return self._hand_over(session, messages)
        # Earlier events are still being handled: these wait their turn. (Receiving
        # changes no deadline and queues no frame, so _after has nothing else to do.)
        session._inbound += len(messages)
        machine.receive(messages)
        session._inbox.extend(machine.take_events())
        return None

    def _hand_over(self, session: Session, messages: list[str]) -> None:
        """Run the message hooks of an idle session at once, in order. A hook that
        really waits finishes in a consumer task, which then handles the rest."""
        session._consuming = True  # events raised meanwhile (a close) wait their turn
        handler = self._handler
        for index, message in enumerate(messages):
            hook = handler.on_message(session, message)
            coro = hook if type(hook) is CoroutineType else _awaiting(hook)
            try:
                awaited = coro.send(None)
            except StopIteration:
                continue
            except Exception:
                self._hook_failed(session, None)
                break
            rest = Received(messages[index + 1 :]) if index + 1 < len(messages) else None
            if rest is not None:
                session._inbox.insert(0, rest)  # before anything raised by the hooks
            session._inbound += 1 + (len(rest.messages) if rest is not None else 0)
            loop = asyncio.get_running_loop()
            session._consumer = loop.create_task(self._consume(session, (coro, awaited), rest))
            return
        session._consuming = False
        if session._inbox:
            self._start_consumer(session)

    def send(self, session: Session, message: str) -> bool:
        """Send one application message to ``session``: straight to the wire as its own
        frame when the session's WebSocket is open, idle and reading, else queued."""
        machine = session.machine
        wire = message if machine.raw else quote(message)
        receiver = session.receiver
        if (
            receiver is not None
            and receiver.frames_direct
            and machine.bypass(self._now())
            and receiver.write_direct(text_frame(wire if machine.raw else f"a[{wire}]"))
        ):
            self.stats.messages_out += 1
            return True
        return self._queue(session, wire)

    def _queue(self, session: Session, wire: str) -> bool:
        machine = session.machine
        outcome = machine.send(wire)
        if outcome is Sent.QUEUED:
            self.stats.messages_out += 1
        if machine.drops or outcome is not Sent.QUEUED:
            self._after(session)
        elif session.receiver is not None:
            session.receiver.wake()
        return outcome is Sent.QUEUED

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
        self._after(session)

    def broadcast(self, message: str) -> int:
        """Send ``message`` to every open session, quoting it once; never waits.

        Returns:
            How many sessions it was queued for.
        """
        quoted = quote(message)
        sockjs_frame: bytes | None = None  # the WebSocket frame, built once for everyone
        raw_frame: bytes | None = None
        now = self._now()
        count = 0
        for session in list(self._live):
            machine = session.machine
            if machine.state is not SessionState.OPEN:
                continue
            receiver = session.receiver
            if receiver is not None and machine.bypass(now):
                if machine.raw:
                    raw_frame = raw_frame or text_frame(message)
                    frame = raw_frame
                else:
                    sockjs_frame = sockjs_frame or text_frame(encode_messages((quoted,)))
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
        consumers = [s._consumer for s in list(self._live) if s._consumer is not None]
        if consumers:
            # Close hooks get disconnect_delay to finish; a hook stuck past that is
            # cancelled, whether or not its session was forgotten meanwhile.
            await asyncio.wait(consumers, timeout=self._options.disconnect_delay)
            for consumer in consumers:
                consumer.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
        for session in list(self._live):
            self.forget(session)

    # -- the one place that follows every change --------------------------------------

    def _after(self, session: Session) -> None:
        machine = session.machine
        stats = self.stats
        if machine.drops:
            stats.slow_consumer_drops += machine.drops
            machine.drops = 0
        events = machine.take_events()
        if events:
            for event in events:
                if isinstance(event, Opened):
                    stats.opened[session.info.transport] += 1
                elif isinstance(event, Closed):
                    stats.closed[session.info.transport] += 1
                    if machine.closed_with is SLOW_CONSUMER:
                        stats.slow_consumer_closes += 1
                    elif machine.closed_with is TIMED_OUT:
                        stats.session_timeouts += 1
                    if session._space is not None and not session._space.done():
                        session._space.set_result(None)
            session._inbox.extend(events)
            if not session._consuming:
                self._start_consumer(session)
        receiver = session.receiver
        if receiver is not None:
            if machine.abort_receiver:
                machine.abort_receiver = False
                receiver.abort()
            elif machine.has_frames() or machine.state is SessionState.CLOSED:
                receiver.wake()
        if session in self._live:
            self._arm(session)

    def _arm(self, session: Session) -> None:
        deadline = session.machine.next_deadline()
        if math.isinf(deadline):
            return
        timer = session._timer
        if timer is not None:
            if session._timer_when <= deadline:
                return  # fires earlier; _on_timer re-arms for the real deadline
            timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        session._timer = loop.call_at(deadline, self._on_timer, session)
        session._timer_when = deadline

    def _on_timer(self, session: Session) -> None:
        session._timer = None
        if session not in self._live:
            return
        if session.machine.timer_fired(self._now()):
            self.forget(session)
        self._after(session)

    def _start_consumer(self, session: Session) -> None:
        session._consuming = True
        coro = self._consume(session)
        try:
            awaited = coro.send(None)
        except StopIteration:
            return  # every hook finished without waiting
        session._consumer = asyncio.get_running_loop().create_task(_finish(coro, awaited))

    def _hook_failed(self, session: Session, event: Event | None) -> None:
        """A hook raised: count and log it, and close the session with 1011 (unless it
        was ``on_close``). ``event`` None: a message hook."""
        self.stats.handler_errors += 1
        log.exception("handler failed in session %r", session.id)
        if not isinstance(event, Closed):
            self.close(session, *HANDLER_ERROR)

    def _handled(self, session: Session, count: int) -> None:
        """``count`` messages left the handler queue: a reader waiting for room goes on."""
        session._inbound -= count
        space = session._space
        if space is not None and not space.done():
            space.set_result(None)

    async def _consume(
        self,
        session: Session,
        started: tuple[Coroutine[Any, Any, None], Any] | None = None,
        rest: Received | None = None,
    ) -> None:
        """Handle the session's events in order. ``started``: a message hook that already
        ran its first step (and what it awaits); ``rest``: the messages that came with it,
        first in the inbox, dropped if it fails."""
        handler = self._handler
        inbox = session._inbox
        try:
            if started is not None:
                try:
                    await _finish(*started)
                except Exception:
                    self._hook_failed(session, None)
                    if rest is not None and rest in inbox:
                        inbox.remove(rest)
                        self._handled(session, len(rest.messages))
                self._handled(session, 1)
            while inbox:
                event = inbox.pop(0)
                try:
                    if isinstance(event, Received):
                        try:
                            for message in event.messages:
                                await handler.on_message(session, message)
                        finally:
                            self._handled(session, len(event.messages))
                    elif isinstance(event, Opened):
                        await handler.on_open(session)
                    elif isinstance(event, Closed):
                        await handler.on_close(session, event.code, event.reason)
                except Exception:
                    self._hook_failed(session, event)
        finally:
            session._consumer = None
            session._consuming = False


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable  # a hook that returned another awaitable than a coroutine


async def _finish(coro: Coroutine[Any, Any, None], awaited: Any) -> None:
    """Drive ``coro``, whose first step already ran, to its end as a task would: wait for
    what it awaits (a future, or ``None`` for a bare yield), then resume it."""
    while True:
        try:
            if awaited is None:
                await asyncio.sleep(0)
            else:
                # The coroutine yielded the future the way it yields to a task, which
                # marks it "blocking"; a task clears the mark before waiting, so do we.
                awaited._asyncio_future_blocking = False
                await awaited
        except BaseException:
            # Cancelling this task cancels the future it waits on; the coroutine then
            # learns it from that future when resumed below, as under a task. A
            # cancellation during a bare yield is thrown in directly.
            if awaited is None or not awaited.done():
                try:
                    awaited = coro.throw(asyncio.CancelledError())
                except StopIteration:
                    return
                continue
        try:
            awaited = coro.send(None)
        except StopIteration:
            return
