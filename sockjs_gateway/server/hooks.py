"""A session's hooks: the task that runs them, and the bounded queue in front of it.

Handler hooks run in a task of their session, never in the task of the request or
connection that carried the message, and never outside a task: ``asyncio.current_task()``,
``asyncio.timeout`` and client libraries behave as in any asyncio code. A session has at
most one such task at a time, which drains the session's inbox in order, so hooks of a
session never overlap. Every task of a session runs in that session's own
``contextvars.Context``, so a contextvar a hook sets is seen by the session's later hooks
and by no other session. Application calls (``session.close()``) only queue: their hooks
run later, in the session's task. A hook that raises, or returns what cannot be awaited,
is logged and closes its session with 1011; ``on_close`` runs once, and ends the task.

What a task costs decides how it lives (measured with callgrind per echoed message):

- Python 3.12+: a task started by network input begins *eagerly* (``eager_start=True``),
  so an echo hook that never waits runs to its end inside the read that delivered the
  message, in its own task, with no scheduling step. The task ends when the inbox is
  empty: an idle session holds no task, and the next message starts one.
- Python 3.11 has no eager start, and a new task costs a scheduling step plus a WeakSet
  entry and its removal; waking a sleeping task costs only the scheduling step. So there,
  once the client has sent a message, the task stays, sleeping on a future between
  messages. A sleeping task holds about 1.2 KB, so the session's timer (the heartbeat at
  the latest) retires one it finds asleep (:meth:`HookRunner.retire`): an idle session
  holds no task, and a session that never sent anything never had one after ``on_open``.

The handler queue is bounded in messages and bytes, per session and per endpoint
(``max_inbound_messages``, ``max_inbound_bytes``, ``max_inbound_bytes_total``): past a
bound, the request or WebSocket that brings more messages waits, which pushes back on the
client instead of growing memory.

:class:`SessionRecord` is what the server keeps for one session beside its machine (these
fields, the session's timer and its upstream lock); :class:`HookRunner` is the part of
:class:`~.registry.SessionRegistry` that runs hooks. It is a base class, not an object
the registry calls, because ``deliver_now`` and ``_run`` are every message's path: one
object keeps them free of a hop across two.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import sys
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from ..handler import Handler
from ..options import SockJSOptions
from ..protocol.state import Closed, Event, Opened, SessionState
from .session import Session

__all__ = ["HookRunner", "SessionRecord", "EAGER_TASKS"]

log = logging.getLogger("sockjs_gateway")

#: Python 3.12+ starts a task's first step at once (see the module docstring).
EAGER_TASKS = sys.version_info >= (3, 12)

#: Messages a client sent in one frame or request, and their size on the wire in bytes.
Batch = tuple[list[str], int]
#: What a sleeping task (Python 3.11) is woken with to end: see :meth:`HookRunner.retire`.
RETIRE: Batch = ([], 0)


class SessionRecord:
    """What the server keeps for one session beside its machine: the timer, the hook
    task and the handler queue. Only the registry (this module and registry.py) reads or
    writes it; the registry holds one per live session (``SessionRegistry._live``), the
    session's task holds it while it runs, and nothing else does. It refers to no
    session, so dropping a session frees both by reference counting alone."""

    __slots__ = (
        "timer",
        "inbox",
        "inbound",
        "inbound_bytes",
        "space",
        "task",
        "consuming",
        "wakeup",
        "context",
        "upstream",
    )

    def __init__(self) -> None:
        self.timer: asyncio.TimerHandle | None = None
        # Opened/Closed events and message batches for the handler, oldest first (a list:
        # an empty deque costs ~600 bytes per session).
        self.inbox: list[object] = []
        self.inbound = 0  # messages waiting for the handler
        self.inbound_bytes = 0  # and their size on the wire
        self.space: asyncio.Future[None] | None = None  # resolved when the handler catches up
        self.task: asyncio.Task[None] | None = None  # the session's task, while it runs hooks
        self.consuming = False  # a task of this session is running (or sleeping, on 3.11)
        #: What a sleeping task (Python 3.11) waits on, its inbox empty: resolved with the
        #: next batch of messages, or None when an event is queued.
        self.wakeup: asyncio.Future[Batch | None] | None = None
        #: Every hook of the session runs in this context: a copy of the context of the
        #: request that opened the session.
        self.context = contextvars.copy_context()
        self.upstream: asyncio.Lock | None = None  # see SessionRegistry.upstream


class HookRunner:
    """Runs the hooks of an endpoint's sessions: one task at a time per session, in the
    session's own context, behind the inbound bounds."""

    def __init__(self, handler: Handler, options: SockJSOptions) -> None:
        self._handler = handler
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max_inbound = options.max_inbound_messages
        self._max_inbound_bytes = options.max_inbound_bytes
        self._max_inbound_total = options.max_inbound_bytes_total
        self._inbound_bytes = 0  # bytes waiting for every handler of the endpoint
        self._waiting: list[asyncio.Future[None]] = []  # readers held by the endpoint bound

    def _room_for(self, record: SessionRecord) -> asyncio.Future[None] | None:
        """None if the session's handler queue (and the endpoint's) has room, else a
        future resolved once it has (see ``SessionRegistry.wait_for_space``)."""
        if (
            record.inbound < self._max_inbound
            and record.inbound_bytes < self._max_inbound_bytes
            and self._inbound_bytes < self._max_inbound_total
        ):
            return None
        waiter = record.space
        if waiter is None or waiter.done():
            waiter = record.space = asyncio.get_running_loop().create_future()
            if record.inbound == 0:  # only the endpoint is full: wake on any progress
                self._waiting.append(waiter)
        return waiter

    def _hand_over(
        self, session: Session, record: SessionRecord, hooks: list[Event], *, eager: bool
    ) -> None:
        """Queue ``Opened`` / ``Closed`` for the session's task, starting or waking it."""
        record.inbox.extend(hooks)
        if not record.consuming:
            self._start(session, record, None, 0, eager=eager)
        elif (waiting := record.wakeup) is not None:
            record.wakeup = None
            waiting.set_result(None)

    def retire(self, record: SessionRecord) -> None:
        """End the session's task if it is asleep (Python 3.11); the next message starts
        a new one. Called when the session's timer fires, so a task sleeps at most one
        heartbeat period without work."""
        waiting = record.wakeup
        if waiting is not None:
            record.wakeup = None
            waiting.set_result(RETIRE)

    def _start(
        self,
        session: Session,
        record: SessionRecord,
        messages: list[str] | None,
        size: int,
        *,
        eager: bool,
    ) -> None:
        """Start a task of ``session`` that runs ``messages`` (``size`` bytes), then
        everything in its inbox.

        The task runs in the session's context, so contextvars a hook sets are seen by
        its later hooks and by no other session. ``eager`` (Python 3.12+): the task's
        first step runs now, as under ``asyncio.eager_task_factory``, so a hook that never
        waits costs no scheduling; application calls (``close``) never start eagerly,
        so a hook never runs inside them.
        """
        record.consuming = True
        loop = self._loop or asyncio.get_running_loop()
        coro = self._run(session, record, messages, size)
        # _run logs what it raises itself, so no done callback (one loop callback less
        # per task) is needed to own its errors.
        if eager and EAGER_TASKS:
            task: asyncio.Task[None] = asyncio.Task(  # type: ignore[call-arg,unused-ignore]
                coro, loop=loop, context=record.context, eager_start=True
            )
            if task.done():  # every hook finished without waiting
                return
        else:
            task = loop.create_task(coro, context=record.context)
        record.task = task

    async def _run(
        self, session: Session, record: SessionRecord, messages: list[str] | None, size: int
    ) -> None:
        """Handle ``messages``, then the session's inbox, in order, until it is empty.

        ``on_message`` is called inline, not through a helper coroutine or a batch
        object: this loop is the hot path of every echo. The rest of a batch is dropped
        once the session is closed (by the hook, or because a hook failed).
        """
        handler = self._handler
        on_message = handler.on_message
        machine = session.machine
        inbox = record.inbox
        loop = self._loop
        is_open = SessionState.OPEN
        chatty = False  # the session sent messages: on 3.11, sleep rather than end
        try:
            while True:
                if messages is None:
                    if not inbox:
                        if EAGER_TASKS or not chatty:
                            return
                        # Asleep until deliver_now hands a batch over as the result,
                        # _hand_over queues an event (None), or the session's timer
                        # finds it still asleep and retires it (RETIRE).
                        waiting = record.wakeup = asyncio.Future(loop=loop)
                        batch = await waiting
                        if batch is None:
                            continue
                        if batch is RETIRE:
                            if inbox:
                                continue
                            return
                        messages, size = batch
                    else:
                        event = inbox.pop(0)
                        if type(event) is tuple:  # (messages, bytes): see deliver_now
                            messages, size = event
                        elif isinstance(event, Opened):
                            await self._hook(session, "on_open", handler.on_open, (session,))
                            continue
                        elif isinstance(event, Closed):
                            args = (session, event.code, event.reason)
                            await self._hook(session, "on_close", handler.on_close, args)
                            return  # nothing follows the close
                        else:
                            continue
                try:
                    for message in messages:
                        if machine.state is not is_open:
                            break
                        result = on_message(session, message)
                        if result is not None:
                            if type(result) is CoroutineType:
                                await result
                            else:
                                await _awaitable(result)
                except Exception:
                    self._hook_failed(session, "on_message")
                finally:
                    chatty = True
                    record.inbound -= len(messages)
                    record.inbound_bytes -= size
                    self._inbound_bytes -= size
                    if record.space is not None or self._waiting:
                        self._room_made(record)
                messages = None
        except Exception:  # a bug of ours: this task is its own owner, so say so
            log.exception("session %r: hook runner failed", session.id)
        finally:
            record.task = None
            record.wakeup = None
            record.consuming = False

    async def _hook(
        self, session: Session, name: str, hook: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        try:
            result = hook(*args)
            if result is not None:
                await _awaitable(result)
        except Exception:
            self._hook_failed(session, name)

    def _room_made(self, record: SessionRecord) -> None:
        """Messages left the handler queue: readers waiting for room go on."""
        space = record.space
        if space is not None and not space.done():
            space.set_result(None)
        waiting = self._waiting
        if waiting and self._inbound_bytes < self._max_inbound_total:
            self._waiting = []
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(None)

    def _hook_failed(self, session: Session, name: str) -> None:
        """A hook raised (or returned what cannot be awaited); the registry counts, logs
        and closes."""
        raise NotImplementedError


async def _awaitable(result: object) -> None:
    """Await what a hook returned. Hooks may be plain functions, whose result is ignored
    unless it is awaitable (docs/handlers.md)."""
    if inspect.isawaitable(result):
        await result
