"""SessionMachine: attach rules, frame order, the two clocks, and what handlers hear."""

from __future__ import annotations

import math

import pytest

from sockjs_gateway.protocol.escaping import quote
from sockjs_gateway.protocol.frames import Close
from sockjs_gateway.protocol.state import (
    ANOTHER_CONNECTION,
    ENDINGS,
    INTERRUPTED,
    TIMED_OUT,
    TRANSITIONS,
    AbortReceiver,
    Attach,
    Cause,
    Closed,
    Dropped,
    Event,
    Expired,
    Opened,
    QueueLimits,
    Received,
    Sent,
    SessionMachine,
    SessionState,
    SlowConsumerPolicy,
)

HEARTBEAT = 25.0
DISCONNECT = 5.0


TIMED_OUT_EVENT = Closed(1000, "Session timed out", Cause.TIMED_OUT)


def fire(session: SessionMachine, now: float) -> list[Event]:
    """The timer fires at ``now``: what happened, as the adapter reads it."""
    session.timer_fired(now)
    return session.events_received()


def machine(now: float = 0.0, *, raw: bool = False) -> SessionMachine:
    return SessionMachine(now, heartbeat_delay=HEARTBEAT, disconnect_delay=DISCONNECT, raw=raw)


def state(session: SessionMachine) -> SessionState:
    """Read the state through a call, so mypy does not narrow it across transitions."""
    return session.state


def opened(now: float = 0.0, *, raw: bool = False) -> SessionMachine:
    """An attached, open session whose first frame and Opened event were taken."""
    session = machine(now, raw=raw)
    assert session.attach(now) is Attach.OK
    session.data_to_send(now)
    assert session.events_received() == [Opened()]
    return session


def test_close_constants() -> None:
    assert Close(2010, "Another connection still open") == ANOTHER_CONNECTION
    assert Close(1002, "Connection interrupted") == INTERRUPTED
    assert Close(1000, "Session timed out") == TIMED_OUT


# -- attach ------------------------------------------------------------------------------


def test_first_attach_opens() -> None:
    session = machine()
    assert state(session) is SessionState.NEW
    assert not session.has_frames()
    assert session.attach(1.0) is Attach.OK
    assert state(session) is SessionState.OPEN
    assert session.attached
    assert session.has_frames()
    assert session.data_to_send(1.0) == ["o"]
    assert session.events_received() == [Opened()]
    assert session.data_to_send(1.0) == []
    assert session.events_received() == []


def test_second_attach_is_busy_and_changes_nothing() -> None:
    session = opened()
    session.send(quote("kept"))
    assert session.attach(2.0) is Attach.BUSY
    assert state(session) is SessionState.OPEN
    assert session.attached
    assert session.events_received() == []
    assert session.data_to_send(2.0) == ['a["kept"]']
    assert session.close_frame is None


def test_reattach_after_detach_does_not_reopen() -> None:
    session = opened()
    session.detach(1.0)
    assert session.attach(2.0) is Attach.OK
    assert session.data_to_send(2.0) == []
    assert session.events_received() == []


def test_close_flushes_messages_before_close_frame() -> None:
    session = opened()
    assert session.send(quote("a")) is Sent.QUEUED
    assert session.send(quote("b")) is Sent.QUEUED
    session.close(3000, "Go away!")
    assert state(session) is SessionState.CLOSED
    assert session.data_to_send(1.0) == ['a["a","b"]', 'c[3000,"Go away!"]']
    assert session.events_received() == [Closed(3000, "Go away!", Cause.SERVER)]
    assert session.closed_with == Close(3000, "Go away!")


def test_closed_session_is_gone_and_replays_close_frame() -> None:
    session = opened()
    session.close(3000, "Go away!")
    session.data_to_send(1.0)
    session.detach(1.0)
    for now in (2.0, 3.0):
        assert session.attach(now) is Attach.GONE
        assert session.close_frame == 'c[3000,"Go away!"]'
    assert session.data_to_send(3.0) == []


def test_second_close_is_ignored() -> None:
    session = opened()
    session.close(3000, "Go away!")
    session.close(3001, "again")
    session.interrupt(1.0)
    assert session.close_frame == 'c[3000,"Go away!"]'
    assert session.data_to_send(1.0) == ['c[3000,"Go away!"]']
    assert session.events_received() == [Closed(3000, "Go away!", Cause.SERVER)]


def test_data_to_send_limit() -> None:
    session = machine()
    session.attach(0.0)
    session.send(quote("x"))
    assert session.data_to_send(0.0, limit=1) == ["o"]
    assert session.has_frames()
    session.close(3000, "Go away!")
    assert session.data_to_send(0.0, limit=1) == ['a["x"]']
    assert not session.finished
    assert session.data_to_send(0.0, limit=5) == ['c[3000,"Go away!"]']
    assert session.finished


# -- heartbeat clock ---------------------------------------------------------------------


def test_heartbeat_deadline_follows_last_output() -> None:
    session = opened(10.0)
    assert session.next_deadline() == 10.0 + HEARTBEAT
    session.send(quote("x"))
    session.data_to_send(12.0)
    assert session.next_deadline() == 12.0 + HEARTBEAT


def test_heartbeat_not_before_deadline() -> None:
    session = opened()
    assert fire(session, HEARTBEAT - 0.001) == []
    assert not session.has_frames()
    assert session.next_deadline() == HEARTBEAT


@pytest.mark.parametrize("late", [0.0, 7.5])
def test_heartbeat_at_or_after_deadline(late: float) -> None:
    session = opened()
    now = HEARTBEAT + late
    assert fire(session, now) == []
    assert session.data_to_send(now) == ["h"]
    assert session.next_deadline() == now + HEARTBEAT
    assert session.events_received() == []


def test_pending_frame_postpones_heartbeat_without_refiring() -> None:
    session = opened()
    session.send(quote("x"))
    session.timer_fired(HEARTBEAT)
    assert session.next_deadline() > HEARTBEAT
    session.timer_fired(HEARTBEAT)  # an early re-fire adds nothing
    assert session.data_to_send(HEARTBEAT) == ['a["x"]']


def test_attached_session_never_expires() -> None:
    session = opened()
    for now in (DISCONNECT, 1e3, 1e6, 1e9):
        assert fire(session, now) == []
        session.data_to_send(now)
    assert state(session) is SessionState.OPEN
    assert session.events_received() == []


# -- expiry clock ------------------------------------------------------------------------


def test_detached_session_expires_after_disconnect_delay() -> None:
    session = opened()
    session.detach(100.0)
    assert session.next_deadline() == 100.0 + DISCONNECT
    assert fire(session, 100.0 + DISCONNECT - 0.001) == []
    assert state(session) is SessionState.OPEN
    assert session.data_to_send(104.0) == []  # no heartbeat while detached
    assert fire(session, 100.0 + DISCONNECT) == [Expired(), TIMED_OUT_EVENT]
    assert state(session) is SessionState.CLOSED
    assert session.data_to_send(106.0) == []
    assert session.attach(106.0) is Attach.GONE
    assert session.close_frame == 'c[1000,"Session timed out"]'


def test_never_opened_session_expires_silently() -> None:
    session = machine(50.0)
    assert session.next_deadline() == 50.0 + DISCONNECT
    assert fire(session, 50.0 + DISCONNECT) == [Expired()]  # forget it; no hook to call


def test_reattach_stops_expiry() -> None:
    session = opened()
    session.detach(1.0)
    session.attach(3.0)
    assert fire(session, 1.0 + DISCONNECT + 1) == []
    assert state(session) is SessionState.OPEN


# -- endings -----------------------------------------------------------------------------


def test_interrupt() -> None:
    session = machine()
    session.attach(0.0)
    session.events_received()
    session.send(quote("queued"))
    assert session.data_to_send(0.5, limit=1) == ["o"]  # a["queued"] stays in the queue
    session.send(quote("lost"))
    session.interrupt(1.0)
    assert not session.attached
    assert state(session) is SessionState.CLOSED
    assert session.events_received() == [Closed(1002, "Connection interrupted", Cause.INTERRUPTED)]
    assert session.close_frame == 'c[1002,"Connection interrupted"]'
    assert not session.has_frames()
    assert session.data_to_send(1.0) == []
    assert session.finished
    assert session.attach(2.0) is Attach.GONE


@pytest.mark.parametrize("raw", [False, True])
def test_client_closed_sends_nothing(raw: bool) -> None:
    session = machine(raw=raw)
    session.attach(0.0)  # "o" not yet taken
    session.send(quote("unsent"))
    session.events_received()
    session.client_closed(4001, "bye")
    assert session.events_received() == [Closed(4001, "bye", Cause.CLIENT)]
    assert session.data_to_send(1.0) == []
    assert session.closed_with == Close(4001, "bye")
    assert session.finished


def test_closed_session_ignores_traffic() -> None:
    session = opened()
    session.close(3000, "Go away!")
    session.events_received()
    session.receive_data(["late"])
    assert session.events_received() == []
    assert session.send(quote("late")) is Sent.CLOSED
    assert session.data_to_send(1.0) == ['c[3000,"Go away!"]']


def test_receive_before_open_and_empty_receive_are_ignored() -> None:
    session = machine()
    session.receive_data(["early"])
    session.attach(0.0)
    session.receive_data([])
    assert session.events_received() == [Opened()]


def test_events_in_order() -> None:
    session = machine()
    session.attach(0.0)
    session.receive_data(["a", "b"])
    session.receive_data(["c"])
    session.close(3000, "Go away!")
    assert session.events_received() == [
        Opened(),
        Received(["a", "b"]),
        Received(["c"]),
        Closed(3000, "Go away!", Cause.SERVER),
    ]


# -- raw sessions ------------------------------------------------------------------------


def test_raw_session_has_no_framing() -> None:
    session = machine(raw=True)
    assert session.attach(0.0) is Attach.OK
    assert session.data_to_send(0.0) == []
    assert session.events_received() == [Opened()]
    assert session.next_deadline() == math.inf
    assert fire(session, 1e6) == []
    assert session.data_to_send(1e6) == []
    assert session.send("one") is Sent.QUEUED
    assert session.send("two") is Sent.QUEUED
    assert session.data_to_send(1.0) == ["one", "two"]


def test_raw_close_sends_no_close_frame() -> None:
    session = opened(raw=True)
    session.send("last")
    session.close(3000, "Go away!")
    assert not session.finished
    assert session.data_to_send(1.0) == ["last"]
    assert session.finished
    assert session.events_received() == [Closed(3000, "Go away!", Cause.SERVER)]
    assert session.send("more") is Sent.CLOSED


def test_raw_detached_session_expires() -> None:
    session = opened(raw=True)
    session.detach(10.0)
    assert session.next_deadline() == 10.0 + DISCONNECT
    assert fire(session, 10.0 + DISCONNECT) == [Expired(), TIMED_OUT_EVENT]


# -- the tables, and the slow-consumer endings as events ---------------------------------


def test_every_cause_has_an_ending_and_closes_new_and_open_sessions() -> None:
    assert set(ENDINGS) == set(Cause)
    for cause in Cause:
        assert TRANSITIONS[SessionState.NEW, cause] is SessionState.CLOSED
        assert TRANSITIONS[SessionState.OPEN, cause] is SessionState.CLOSED
    assert not [key for key in TRANSITIONS if key[0] is SessionState.CLOSED]


def limited(policy: SlowConsumerPolicy, max_messages: int = 2) -> SessionMachine:
    limits = QueueLimits(max_messages=max_messages, send_time_limit=1.0, policy=policy)
    session = SessionMachine(
        0.0, heartbeat_delay=HEARTBEAT, disconnect_delay=DISCONNECT, limits=limits
    )
    session.attach(0.0)
    session.data_to_send(0.0)
    session.events_received()
    return session


def test_a_full_queue_closes_with_4500_and_cuts_off_a_receiver_stuck_in_a_write() -> None:
    session = limited(SlowConsumerPolicy.CLOSE)
    session.begin_write(0.0)
    assert session.send(quote("a")) is Sent.QUEUED
    assert session.send(quote("b")) is Sent.QUEUED
    assert session.send(quote("c")) is Sent.CLOSED
    assert session.events_received() == [
        Dropped(2),
        Closed(4500, "Slow consumer", Cause.QUEUE_FULL),
        AbortReceiver(),
    ]
    assert session.data_to_send(1.0) == ['c[4500,"Slow consumer"]']


def test_a_full_queue_with_no_write_under_way_aborts_nothing() -> None:
    session = limited(SlowConsumerPolicy.CLOSE, max_messages=1)
    session.send(quote("a"))
    assert session.send(quote("b")) is Sent.CLOSED
    assert session.events_received() == [
        Dropped(1),
        Closed(4500, "Slow consumer", Cause.QUEUE_FULL),
    ]


def test_a_stuck_write_closes_without_a_close_frame() -> None:
    session = limited(SlowConsumerPolicy.CLOSE)
    session.send(quote("a"))
    session.begin_write(0.0)
    assert session.next_deadline() == 1.0
    assert fire(session, 1.0) == [
        Dropped(1),
        Closed(4500, "Slow consumer", Cause.STUCK_WRITE),
        AbortReceiver(),
    ]
    assert session.data_to_send(1.0) == []
    assert session.close_frame == 'c[4500,"Slow consumer"]'


@pytest.mark.parametrize(
    ("policy", "outcome", "frame"),
    [
        pytest.param(
            SlowConsumerPolicy.DROP_OLDEST, Sent.DISPLACED, 'a["b","c"]', id="drop-oldest-queues-it"
        ),
        pytest.param(
            SlowConsumerPolicy.DROP_NEWEST, Sent.DROPPED, 'a["a","b"]', id="drop-newest-drops-it"
        ),
    ],
)
def test_a_message_past_the_queue_limit_drops_one_and_reports_it(
    policy: SlowConsumerPolicy, outcome: Sent, frame: str
) -> None:
    session = limited(policy)
    session.send(quote("a"))
    session.send(quote("b"))
    assert session.send(quote("c")) is outcome
    assert session.events_received() == [Dropped(1)]
    assert session.data_to_send(1.0) == [frame]


def test_claiming_a_direct_write_needs_an_idle_open_attached_session() -> None:
    session = limited(SlowConsumerPolicy.CLOSE)
    assert session.claim_direct_write(3.0)
    assert session.next_deadline() == 3.0 + HEARTBEAT  # the claim counts as output
    session.send(quote("queued"))
    assert not session.claim_direct_write(4.0)  # it would overtake the queue
    session.data_to_send(4.0)
    session.begin_write(4.0)
    assert not session.claim_direct_write(4.5)  # a write is under way
    session.end_write()
    session.detach(5.0)
    assert not session.claim_direct_write(5.0)
