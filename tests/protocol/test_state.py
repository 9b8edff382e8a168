"""SessionMachine: attach rules, frame order, the two clocks, and what handlers hear."""

from __future__ import annotations

import math

import pytest

from sockjs_gateway.protocol.escaping import quote
from sockjs_gateway.protocol.frames import Close
from sockjs_gateway.protocol.state import (
    ANOTHER_CONNECTION,
    INTERRUPTED,
    TIMED_OUT,
    Attach,
    Closed,
    Opened,
    Received,
    Sent,
    SessionMachine,
    SessionState,
)

HEARTBEAT = 25.0
DISCONNECT = 5.0


def machine(now: float = 0.0, *, raw: bool = False) -> SessionMachine:
    return SessionMachine(now, heartbeat_delay=HEARTBEAT, disconnect_delay=DISCONNECT, raw=raw)


def state(session: SessionMachine) -> SessionState:
    """Read the state through a call, so mypy does not narrow it across transitions."""
    return session.state


def opened(now: float = 0.0, *, raw: bool = False) -> SessionMachine:
    """An attached, open session whose first frame and Opened event were taken."""
    session = machine(now, raw=raw)
    assert session.attach(now) is Attach.OK
    session.take_frames(now)
    assert session.take_events() == [Opened()]
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
    assert session.take_frames(1.0) == ["o"]
    assert session.take_events() == [Opened()]
    assert session.take_frames(1.0) == []
    assert session.take_events() == []


def test_second_attach_is_busy_and_changes_nothing() -> None:
    session = opened()
    session.send(quote("kept"))
    assert session.attach(2.0) is Attach.BUSY
    assert state(session) is SessionState.OPEN
    assert session.attached
    assert session.take_events() == []
    assert session.take_frames(2.0) == ['a["kept"]']
    assert session.close_frame is None


def test_reattach_after_detach_does_not_reopen() -> None:
    session = opened()
    session.detach(1.0)
    assert session.attach(2.0) is Attach.OK
    assert session.take_frames(2.0) == []
    assert session.take_events() == []


def test_close_flushes_messages_before_close_frame() -> None:
    session = opened()
    assert session.send(quote("a")) is Sent.QUEUED
    assert session.send(quote("b")) is Sent.QUEUED
    session.close(3000, "Go away!")
    assert state(session) is SessionState.CLOSED
    assert session.take_frames(1.0) == ['a["a","b"]', 'c[3000,"Go away!"]']
    assert session.take_events() == [Closed(3000, "Go away!")]
    assert session.closed_with == Close(3000, "Go away!")


def test_closed_session_is_gone_and_replays_close_frame() -> None:
    session = opened()
    session.close(3000, "Go away!")
    session.take_frames(1.0)
    session.detach(1.0)
    for now in (2.0, 3.0):
        assert session.attach(now) is Attach.GONE
        assert session.close_frame == 'c[3000,"Go away!"]'
    assert session.take_frames(3.0) == []


def test_second_close_is_ignored() -> None:
    session = opened()
    session.close(3000, "Go away!")
    session.close(3001, "again")
    session.interrupt(1.0)
    assert session.close_frame == 'c[3000,"Go away!"]'
    assert session.take_frames(1.0) == ['c[3000,"Go away!"]']
    assert session.take_events() == [Closed(3000, "Go away!")]


def test_take_frames_limit() -> None:
    session = machine()
    session.attach(0.0)
    session.send(quote("x"))
    assert session.take_frames(0.0, limit=1) == ["o"]
    assert session.has_frames()
    session.close(3000, "Go away!")
    assert session.take_frames(0.0, limit=1) == ['a["x"]']
    assert not session.finished
    assert session.take_frames(0.0, limit=5) == ['c[3000,"Go away!"]']
    assert session.finished


# -- heartbeat clock ---------------------------------------------------------------------


def test_heartbeat_deadline_follows_last_output() -> None:
    session = opened(10.0)
    assert session.next_deadline() == 10.0 + HEARTBEAT
    session.send(quote("x"))
    session.take_frames(12.0)
    assert session.next_deadline() == 12.0 + HEARTBEAT


def test_heartbeat_not_before_deadline() -> None:
    session = opened()
    assert session.timer_fired(HEARTBEAT - 0.001) is False
    assert not session.has_frames()
    assert session.next_deadline() == HEARTBEAT


@pytest.mark.parametrize("late", [0.0, 7.5])
def test_heartbeat_at_or_after_deadline(late: float) -> None:
    session = opened()
    now = HEARTBEAT + late
    assert session.timer_fired(now) is False
    assert session.take_frames(now) == ["h"]
    assert session.next_deadline() == now + HEARTBEAT
    assert session.take_events() == []


def test_pending_frame_postpones_heartbeat_without_refiring() -> None:
    session = opened()
    session.send(quote("x"))
    session.timer_fired(HEARTBEAT)
    assert session.next_deadline() > HEARTBEAT
    session.timer_fired(HEARTBEAT)  # an early re-fire adds nothing
    assert session.take_frames(HEARTBEAT) == ['a["x"]']


def test_attached_session_never_expires() -> None:
    session = opened()
    for now in (DISCONNECT, 1e3, 1e6, 1e9):
        assert session.timer_fired(now) is False
        session.take_frames(now)
    assert state(session) is SessionState.OPEN
    assert session.take_events() == []


# -- expiry clock ------------------------------------------------------------------------


def test_detached_session_expires_after_disconnect_delay() -> None:
    session = opened()
    session.detach(100.0)
    assert session.next_deadline() == 100.0 + DISCONNECT
    assert session.timer_fired(100.0 + DISCONNECT - 0.001) is False
    assert state(session) is SessionState.OPEN
    assert session.take_frames(104.0) == []  # no heartbeat while detached
    assert session.timer_fired(100.0 + DISCONNECT) is True
    assert state(session) is SessionState.CLOSED
    assert session.take_events() == [Closed(1000, "Session timed out")]
    assert session.take_frames(106.0) == []
    assert session.attach(106.0) is Attach.GONE
    assert session.close_frame == 'c[1000,"Session timed out"]'


def test_never_opened_session_expires_silently() -> None:
    session = machine(50.0)
    assert session.next_deadline() == 50.0 + DISCONNECT
    assert session.timer_fired(50.0 + DISCONNECT) is True
    assert session.take_events() == []


def test_reattach_stops_expiry() -> None:
    session = opened()
    session.detach(1.0)
    session.attach(3.0)
    assert session.timer_fired(1.0 + DISCONNECT + 1) is False
    assert state(session) is SessionState.OPEN


# -- endings -----------------------------------------------------------------------------


def test_interrupt() -> None:
    session = machine()
    session.attach(0.0)
    session.take_events()
    session.send(quote("queued"))
    assert session.take_frames(0.5, limit=1) == ["o"]  # a["queued"] stays in the queue
    session.send(quote("lost"))
    session.interrupt(1.0)
    assert not session.attached
    assert state(session) is SessionState.CLOSED
    assert session.take_events() == [Closed(1002, "Connection interrupted")]
    assert session.close_frame == 'c[1002,"Connection interrupted"]'
    assert not session.has_frames()
    assert session.take_frames(1.0) == []
    assert session.finished
    assert session.attach(2.0) is Attach.GONE


@pytest.mark.parametrize("raw", [False, True])
def test_client_closed_sends_nothing(raw: bool) -> None:
    session = machine(raw=raw)
    session.attach(0.0)  # "o" not yet taken
    session.send(quote("unsent"))
    session.take_events()
    session.client_closed(4001, "bye")
    assert session.take_events() == [Closed(4001, "bye")]
    assert session.take_frames(1.0) == []
    assert session.closed_with == Close(4001, "bye")
    assert session.finished


def test_closed_session_ignores_traffic() -> None:
    session = opened()
    session.close(3000, "Go away!")
    session.take_events()
    session.receive(["late"])
    assert session.take_events() == []
    assert session.send(quote("late")) is Sent.CLOSED
    assert session.take_frames(1.0) == ['c[3000,"Go away!"]']


def test_receive_before_open_and_empty_receive_are_ignored() -> None:
    session = machine()
    session.receive(["early"])
    session.attach(0.0)
    session.receive([])
    assert session.take_events() == [Opened()]


def test_events_in_order() -> None:
    session = machine()
    session.attach(0.0)
    session.receive(["a", "b"])
    session.receive(["c"])
    session.close(3000, "Go away!")
    assert session.take_events() == [
        Opened(),
        Received(["a", "b"]),
        Received(["c"]),
        Closed(3000, "Go away!"),
    ]


# -- raw sessions ------------------------------------------------------------------------


def test_raw_session_has_no_framing() -> None:
    session = machine(raw=True)
    assert session.attach(0.0) is Attach.OK
    assert session.take_frames(0.0) == []
    assert session.take_events() == [Opened()]
    assert session.next_deadline() == math.inf
    assert session.timer_fired(1e6) is False
    assert session.take_frames(1e6) == []
    assert session.send("one") is Sent.QUEUED
    assert session.send("two") is Sent.QUEUED
    assert session.take_frames(1.0) == ["one", "two"]


def test_raw_close_sends_no_close_frame() -> None:
    session = opened(raw=True)
    session.send("last")
    session.close(3000, "Go away!")
    assert not session.finished
    assert session.take_frames(1.0) == ["last"]
    assert session.finished
    assert session.take_events() == [Closed(3000, "Go away!")]
    assert session.send("more") is Sent.CLOSED


def test_raw_detached_session_expires() -> None:
    session = opened(raw=True)
    session.detach(10.0)
    assert session.next_deadline() == 10.0 + DISCONNECT
    assert session.timer_fired(10.0 + DISCONNECT) is True
    assert session.take_events() == [Closed(1000, "Session timed out")]
