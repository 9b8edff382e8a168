"""SessionRegistry alone, on a real event loop with fake receivers and no sockets
(tests/server/registry_harness.py): timers, 2010, close replay, handler backpressure,
slow consumers and the direct-write path, each in a few lines.

The same behaviours are tested end to end elsewhere (test_lifecycle.py,
test_backpressure.py, test_slow_consumers.py); here a failure points at the registry."""

from __future__ import annotations

import asyncio
import contextvars
import time

import pytest

from sockjs_gateway.protocol.escaping import quote
from sockjs_gateway.protocol.frames import encode_message
from sockjs_gateway.protocol.rfc6455 import text_frame
from sockjs_gateway.protocol.state import Attach, SessionState
from sockjs_gateway.server.registry import _clock_of
from sockjs_gateway.server.session import Session
from tests.conftest import RecordingHandler
from tests.helpers import wait_until
from tests.server.registry_harness import FakeReceiver, Harness

pytestmark = pytest.mark.asyncio

#: Short, so a test waits for a timer a few milliseconds; never a timed assertion.
DELAY = 0.02


async def test_a_heartbeat_wakes_the_receiver_after_heartbeat_delay() -> None:
    harness = Harness.make(heartbeat_delay=DELAY)
    _, receiver = await harness.open()
    woken = receiver.wakes
    await receiver.until(lambda: receiver.wakes > woken)
    assert receiver.take() == ["h"]


async def test_a_session_without_a_receiver_expires_and_is_forgotten() -> None:
    harness = Harness.make(disconnect_delay=DELAY)
    session, _ = await harness.open()
    harness.registry.detach(session)
    (close,) = await harness.handler.wait_for("close")
    assert close[2:] == (1000, "Session timed out")
    assert len(harness.registry) == 0
    assert harness.registry.get(session.id) is None
    assert harness.registry.stats.session_timeouts == 1


async def test_a_second_receiver_gets_2010_and_the_first_keeps_the_session() -> None:
    harness = Harness.make()
    session, first = await harness.open()
    second = FakeReceiver(harness.registry, session, direct=False)
    assert harness.registry.attach(session, second) is Attach.BUSY
    assert session.receiver is first
    session.send("still here")
    assert first.take() == ['a["still here"]']


async def test_a_closed_session_replays_its_close_frame_to_every_later_receiver() -> None:
    harness = Harness.make()
    session, _ = await harness.open()
    harness.registry.detach(session)
    session.send("last words")
    session.close(3000, "Go away!")
    receiver = harness.attach(session)  # the queued frames still reach one receiver
    assert receiver.take() == ['a["last words"]', 'c[3000,"Go away!"]']
    harness.registry.detach(session)
    for _ in range(2):
        late = FakeReceiver(harness.registry, session, direct=False)
        assert harness.registry.attach(session, late) is Attach.GONE
        assert session.machine.close_frame == 'c[3000,"Go away!"]'
    await harness.handler.wait_for("close")


async def test_a_full_handler_queue_holds_the_sender_until_the_handler_catches_up() -> None:
    release = asyncio.Event()

    class Slow(RecordingHandler):
        async def on_message(self, session: Session, message: str) -> None:
            await release.wait()
            await super().on_message(session, message)

    harness = Harness.make(Slow(), max_inbound_messages=2)
    session, _ = await harness.open()
    assert harness.registry.deliver_now(session, ["1"], 1) is None
    space = harness.registry.deliver_now(session, ["2"], 1)
    assert space is not None  # two wait for the handler: the reader must stop
    await asyncio.sleep(0)
    assert not space.done()
    release.set()
    await asyncio.wait_for(space, 5.0)
    await harness.handler.wait_for("message", 2)
    assert [event[2] for event in harness.handler.of_kind("message")] == ["1", "2"]


async def test_a_write_stuck_past_send_time_limit_cuts_the_receiver_off() -> None:
    harness = Harness.make(send_time_limit=DELAY)
    session, receiver = await harness.open()
    session.send("never read")
    harness.registry.begin_write(session)
    await receiver.until(lambda: receiver.aborted)
    (close,) = await harness.handler.wait_for("close")
    assert close[2:] == (4500, "Slow consumer")
    assert session.state is SessionState.CLOSED
    assert harness.registry.stats.slow_consumer_closes == 1
    assert harness.registry.stats.slow_consumer_drops == 1


async def test_a_full_outbound_queue_closes_the_session_with_4500() -> None:
    harness = Harness.make(max_queued_messages=2)
    session, receiver = await harness.open()
    assert session.send("1")
    assert session.send("2")
    assert not session.send("3")
    assert receiver.take() == ['c[4500,"Slow consumer"]']
    assert not receiver.aborted  # no write was under way
    assert harness.registry.stats.slow_consumer_drops == 2


async def test_drop_oldest_keeps_the_freshest_messages_and_counts_the_rest() -> None:
    harness = Harness.make(max_queued_messages=2, slow_consumer="drop-oldest")
    session, receiver = await harness.open()
    assert all(session.send(text) for text in ("1", "2", "3", "4"))
    assert receiver.take() == ['a["3","4"]']
    assert harness.registry.stats.slow_consumer_drops == 2
    assert harness.registry.stats.messages_out == 4


async def test_an_idle_websocket_gets_each_message_as_its_own_frame_at_once() -> None:
    harness = Harness.make()
    session, receiver = await harness.open(direct=True)
    assert session.send("one")
    assert receiver.written == [text_frame('a["one"]')]
    assert harness.registry.broadcast("all") == 1
    assert receiver.written[-1] == text_frame('a["all"]')
    receiver.reading = False  # a paused socket refuses: the message queues instead
    assert session.send("two")
    assert receiver.take() == ['a["two"]']


@pytest.mark.parametrize(
    "message",
    [
        "",
        "plain",
        'a "quoted" \\ one',
        "\x00\n\u2028\ufff0",
        "caf\u00e9 \u6f22",
        "\U0001f600",
        "\ud800",
        "x" * 200,
    ],
)
async def test_a_direct_frame_is_the_frame_of_the_quoted_message(message: str) -> None:
    """The direct path builds ``a[...]`` itself: the same frame the queue would make."""
    harness = Harness.make()
    session, receiver = await harness.open(direct=True)
    assert session.send(message)
    assert receiver.written == [text_frame(encode_message(quote(message)))]


async def test_batches_delivered_while_the_task_sleeps_keep_their_order() -> None:
    """On Python 3.11 a sleeping task is handed the first batch directly; what follows
    before it runs queues behind it, and a close after them comes last."""
    harness = Harness.make()
    session, _ = await harness.open()
    registry = harness.registry
    await asyncio.sleep(0)  # let the session's task go to sleep (3.11) or end (3.12+)
    assert registry.deliver_now(session, ["one", "two"], 10) is None
    assert registry.deliver_now(session, ["three"], 5) is None
    await harness.handler.wait_for("message", 3)
    session.close(3000, "Go away!")
    await harness.handler.wait_for("close")
    assert [event[0::2] for event in harness.handler.events] == [
        ("open",),
        ("message", "one"),
        ("message", "two"),
        ("message", "three"),
        ("close", 3000),
    ]
    assert registry.stats.messages_in == 3


async def test_a_session_that_never_sent_holds_no_task() -> None:
    """Idle sessions cost no task: after ``on_open`` the session's task ends (on 3.11
    too, where a session that has sent messages keeps a sleeping one)."""
    harness = Harness.make()
    session, _ = await harness.open()
    record = harness.registry.record(session)
    assert record is not None
    await wait_until(lambda: record.task is None)
    assert not record.consuming


async def test_the_timer_retires_a_sleeping_task_and_messages_still_flow() -> None:
    """On Python 3.11 the task sleeps between messages; the session's timer (here a
    short heartbeat) ends it, and the next message starts a new one in the same
    context. On 3.12+ the task has ended already; the messages flow the same."""
    seen: list[tuple[str, object]] = []
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")

    class Marking(RecordingHandler):
        async def on_open(self, session: Session) -> None:
            marker.set(session.id)
            await super().on_open(session)

        async def on_message(self, session: Session, message: str) -> None:
            seen.append((message, marker.get(None)))
            await super().on_message(session, message)

    harness = Harness.make(Marking(), heartbeat_delay=0.05)
    session, _ = await harness.open()
    registry = harness.registry
    record = registry.record(session)
    assert record is not None
    assert registry.deliver_now(session, ["one"], 7) is None
    await harness.handler.wait_for("message", 1)
    await wait_until(lambda: record.task is None)  # retired by the heartbeat timer
    assert registry.deliver_now(session, ["two"], 7) is None
    await harness.handler.wait_for("message", 2)
    assert seen == [("one", "s1"), ("two", "s1")]
    session.close(3000, "Go away!")
    await harness.handler.wait_for("close")
    assert registry.stats.messages_in == 2


async def test_the_registry_clock_is_the_loops() -> None:
    """Sent messages restart the heartbeat clock without a call to ``loop.time``
    where that is ``time.monotonic``; any other loop's clock is its own."""
    loop = asyncio.get_running_loop()
    assert _clock_of(loop) is time.monotonic
    before = time.monotonic()
    assert before <= loop.time() <= time.monotonic()

    class OwnClock(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return 42.0

    other = OwnClock()
    try:
        assert _clock_of(other)() == 42.0
    finally:
        other.close()


async def test_hooks_run_in_the_sessions_own_task() -> None:
    tasks: list[asyncio.Task[object] | None] = []

    class Where(RecordingHandler):
        async def on_message(self, session: Session, message: str) -> None:
            tasks.append(asyncio.current_task())
            await super().on_message(session, message)

    harness = Harness.make(Where())
    session, _ = await harness.open()
    harness.registry.deliver_now(session, ["a"], 1)
    await harness.handler.wait_for("message")
    assert tasks[0] is not None
    assert tasks[0] is not asyncio.current_task()
