"""The per-connection STOMP machine with plain calls and a fake clock: negotiation,
receipts, subscriptions, acks, transactions, heart-beats, timeouts and limits."""

from __future__ import annotations

import math

import pytest

from sockjs_gateway.exceptions import LocalProtocolError
from sockjs_gateway.stomp import (
    Ack,
    ConnectionState,
    ConnectRequest,
    Nack,
    Send,
    StompError,
    StompOptions,
    Subscribe,
    Unsubscribe,
)
from tests.stomp.helpers import CONNECT, Peer, wire


def connected(options: StompOptions | None = None, connect: str = CONNECT) -> Peer:
    peer = Peer(options)
    [request] = peer.send(connect)
    assert isinstance(request, ConnectRequest)
    peer.machine.accept()
    assert peer.frame().command == "CONNECTED"
    return peer


def assert_error(peer: Peer, message: str, receipt: str | None = None) -> None:
    [error] = peer.frames()
    assert error.command == "ERROR"
    assert message in (error.get("message") or ""), error.get("message")
    assert error.get("receipt-id") == receipt
    assert peer.machine.closed
    assert peer.machine.error_message == error.get("message")


# -- CONNECT ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ("1.0,1.1,1.2", "1.2"),
        ("1.2,1.0", "1.2"),
        ("1.1", "1.1"),
        ("1.0, 1.1", "1.1"),
        (None, "1.0"),
    ],
)
def test_version_negotiation_picks_the_highest_common(offered: str | None, chosen: str) -> None:
    peer = Peer()
    headers = {"accept-version": offered} if offered else {}
    [request] = peer.send(wire("CONNECT", headers))
    assert isinstance(request, ConnectRequest)
    assert request.version == chosen
    peer.machine.accept()
    assert peer.frame().get("version") == chosen


def test_unsupported_version_gets_an_error_listing_ours() -> None:
    peer = Peer()
    assert peer.send(wire("CONNECT", {"accept-version": "2.0,3.1"})) == []
    [error] = peer.frames()
    assert error.get("version") == "1.0,1.1,1.2"
    assert error.get("message") == "unsupported STOMP version; this server speaks 1.0,1.1,1.2"
    assert peer.machine.closed


def test_versions_option_limits_negotiation() -> None:
    peer = Peer(StompOptions(versions=("1.2",)))
    assert peer.send(wire("CONNECT", {"accept-version": "1.0,1.1"})) == []
    assert peer.frame().get("version") == "1.2"


def test_connected_headers() -> None:
    peer = Peer(StompOptions(server="test/1"))
    [request] = peer.send(
        wire("STOMP", {"accept-version": "1.2", "host": "example", "login": "al", "passcode": "pw"})
    )
    assert isinstance(request, ConnectRequest)
    assert (request.host, request.login, request.passcode) == ("example", "al", "pw")
    assert peer.machine.state is ConnectionState.AUTHENTICATING
    peer.machine.accept("alice")
    frame = peer.frame()
    assert frame.command == "CONNECTED"
    assert dict(frame.headers) == {
        "version": "1.2",
        "heart-beat": "10000,10000",
        "server": "test/1",
        "session": "s-1",
        "user-name": "alice",
    }
    assert peer.machine.state.value == "connected"


def test_connect_headers_are_not_unescaped() -> None:
    [request] = Peer().send("CONNECT\naccept-version:1.2\nlogin:dom\\user\n\n\0")
    assert isinstance(request, ConnectRequest)
    assert request.login == "dom\\user"


def test_1_0_has_no_heart_beat_header() -> None:
    peer = connected(connect=wire("CONNECT", {"heart-beat": "1000,1000"}))
    assert (peer.machine.heartbeat_in, peer.machine.heartbeat_out) == (0, 0)
    assert peer.machine.next_deadline() == math.inf


def test_reject_sends_error_and_closes() -> None:
    peer = Peer()
    peer.send(CONNECT)
    peer.machine.reject("authentication failed", "bad passcode")
    [error] = peer.frames()
    assert (error.get("message"), error.text) == ("authentication failed", "bad passcode")
    assert peer.machine.closed


def test_frames_after_connect_wait_for_authentication() -> None:
    peer = Peer()
    events = peer.send(CONNECT + wire("SUBSCRIBE", {"id": "0", "destination": "/topic/a"}))
    assert [type(e) for e in events] == [ConnectRequest]
    assert list(peer.machine.events_received()) == []
    peer.machine.accept()
    assert [type(e) for e in peer.machine.events_received()] == [Subscribe]


def test_accept_outside_authentication_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Peer().machine.accept()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (wire("SEND", {"destination": "/topic/a"}), "expected CONNECT or STOMP, got SEND"),
        (wire("CONNECTED"), "CONNECTED is a server frame"),
        ("HELLO\n\n\0", "unknown command"),
    ],
)
def test_anything_but_connect_first_is_an_error(data: str, message: str) -> None:
    peer = Peer()
    assert peer.send(data) == []
    assert_error(peer, message)


def test_second_connect_is_an_error() -> None:
    peer = connected()
    peer.send(CONNECT)
    assert_error(peer, "already connected")


def test_invalid_heart_beat_header() -> None:
    peer = Peer()
    peer.send(wire("CONNECT", {"accept-version": "1.2", "heart-beat": "soon"}))
    assert_error(peer, "invalid heart-beat header")


# -- frames and receipts ------------------------------------------------------------------


def test_subscribe_event_and_receipt_after_complete() -> None:
    peer = connected()
    [event] = peer.send(
        wire("SUBSCRIBE", {"id": "7", "destination": "/queue/a", "ack": "client", "receipt": "r1"})
    )
    assert isinstance(event, Subscribe)
    assert (event.id, event.destination, event.ack, event.receipt) == (
        "7",
        "/queue/a",
        "client",
        "r1",
    )
    assert peer.frames() == []  # no receipt until the owner has handled it
    peer.machine.complete(event)
    receipt = peer.frame()
    assert (receipt.command, receipt.get("receipt-id")) == ("RECEIPT", "r1")


def test_fail_sends_error_naming_the_receipt() -> None:
    peer = connected()
    [event] = peer.send(wire("SEND", {"destination": "/x/y", "receipt": "r9"}, "hi"))
    peer.machine.fail(event, StompError("not here", "details"))
    assert_error(peer, "not here", receipt="r9")


def test_send_event_carries_the_frame() -> None:
    peer = connected()
    [event] = peer.send(wire("SEND", {"destination": "/topic/a", "x-custom": "1"}, "hello"))
    assert isinstance(event, Send)
    assert event.frame.text == "hello"
    assert event.frame.get("x-custom") == "1"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (wire("SEND", {"receipt": "r"}), "SEND frame needs a destination header"),
        (wire("SUBSCRIBE", {"destination": "/topic/a", "receipt": "r"}), "needs an id header"),
        (wire("SUBSCRIBE", {"id": "1", "receipt": "r"}), "needs a destination header"),
        (
            wire("SUBSCRIBE", {"id": "1", "destination": "/q", "ack": "sometimes", "receipt": "r"}),
            "invalid ack mode 'sometimes'",
        ),
        (wire("UNSUBSCRIBE", {"receipt": "r"}), "UNSUBSCRIBE frame needs an id header"),
        (wire("ACK", {"receipt": "r"}), "ACK frame needs an id header"),
        (wire("NACK", {"receipt": "r"}), "NACK frame needs an id header"),
        (wire("BEGIN", {"receipt": "r"}), "BEGIN frame needs a transaction header"),
        (wire("MESSAGE", {"receipt": "r"}), "MESSAGE is a server frame"),
    ],
)
def test_invalid_frames_get_an_error_with_their_receipt(frame: str, message: str) -> None:
    peer = connected()
    assert peer.send(frame) == []
    assert_error(peer, message, receipt="r")


def test_unsubscribe_ack_and_nack_events() -> None:
    peer = connected()
    events = peer.send(
        wire("UNSUBSCRIBE", {"id": "3"})
        + wire("ACK", {"id": "m1"})
        + wire("NACK", {"id": "m2", "receipt": "n"})
    )
    assert events == [Unsubscribe("3"), Ack("m1"), Nack("m2", "n")]


def test_1_0_and_1_1_ack_by_message_id() -> None:
    peer = connected(connect=wire("CONNECT", {"accept-version": "1.1"}))
    assert peer.send(wire("ACK", {"message-id": "m1", "subscription": "0"})) == [Ack("m1")]


def test_1_0_subscription_id_defaults_to_the_destination() -> None:
    peer = connected(connect=wire("CONNECT"))
    [event] = peer.send(wire("SUBSCRIBE", {"destination": "/topic/a"}))
    assert isinstance(event, Subscribe)
    assert event.id == "/topic/a"
    assert peer.send(wire("UNSUBSCRIBE", {"destination": "/topic/a"})) == [Unsubscribe("/topic/a")]


def test_frames_split_across_messages_and_batched_in_one() -> None:
    peer = connected()
    data = wire("ACK", {"id": "1"}) + "\n" + wire("ACK", {"id": "2"})
    assert peer.send(data[:5]) == []
    assert peer.send(data[5:20]) == [Ack("1")]
    assert peer.send(data[20:]) == [Ack("2")]


def test_disconnect_with_receipt() -> None:
    peer = connected()
    assert peer.send(wire("DISCONNECT", {"receipt": "bye"})) == []
    receipt = peer.frame()
    assert (receipt.command, receipt.get("receipt-id")) == ("RECEIPT", "bye")
    assert peer.machine.closed
    assert peer.machine.error_message is None
    assert peer.send(wire("SEND", {"destination": "/topic/a"})) == []
    assert peer.frames() == []


# -- MESSAGE ------------------------------------------------------------------------------


def test_message_headers_in_1_2() -> None:
    peer = connected()
    assert peer.machine.message("sub-0", "/queue/a", "42", [("x-k", "a:b\nc")], b"hi", ack="42")
    frame = peer.frame()
    assert frame.command == "MESSAGE"
    assert dict(frame.headers) == {
        "subscription": "sub-0",
        "message-id": "42",
        "destination": "/queue/a",
        "ack": "42",
        "content-type": "text/plain;charset=utf-8",
        "x-k": "a:b\nc",
        "content-length": "2",
    }
    assert frame.body == b"hi"


def test_message_keeps_the_senders_content_type_and_omits_ack_before_1_2() -> None:
    peer = connected(connect=wire("CONNECT", {"accept-version": "1.1"}))
    peer.machine.message(
        "0", "/topic/a", "1", [("content-type", "application/json")], b"{}", ack="1"
    )
    frame = peer.frame()
    assert frame.get("ack") is None
    assert frame.get("content-type") == "application/json"


def test_1_0_gets_header_values_it_can_carry() -> None:
    peer = connected(connect=wire("CONNECT"))
    peer.machine.message("0", "/topic/a", "1", [("x:k", "line\none\r")], b"")
    raw = peer.machine.data_to_send(0.0)
    assert "x_k:line one \n" in raw[0]


def test_no_message_before_connected_or_after_close() -> None:
    peer = Peer()
    assert not peer.machine.message("0", "/topic/a", "1", [], b"")
    peer = connected()
    peer.send(wire("DISCONNECT"))
    assert not peer.machine.message("0", "/topic/a", "1", [], b"")


# -- transactions -------------------------------------------------------------------------


def test_transaction_holds_frames_until_commit() -> None:
    peer = connected()
    events = peer.send(
        wire("BEGIN", {"transaction": "t", "receipt": "b"})
        + wire("SEND", {"destination": "/queue/a", "transaction": "t", "receipt": "s"}, "one")
        + wire("ACK", {"id": "m1", "transaction": "t"})
        + wire("SEND", {"destination": "/queue/a"}, "outside")
    )
    assert [type(e) for e in events] == [Send]  # only the SEND outside the transaction
    assert [f.get("receipt-id") for f in peer.frames()] == ["b", "s"]  # received, not done
    events = peer.send(wire("COMMIT", {"transaction": "t", "receipt": "c"}))
    assert [type(e) for e in events] == [Send, Ack]
    assert [e.receipt for e in events] == [None, "c"]  # COMMIT's receipt rides on the last
    for event in events:
        peer.machine.complete(event)
    assert [f.get("receipt-id") for f in peer.frames()] == ["c"]


def test_empty_commit_and_abort_receipt_at_once() -> None:
    peer = connected()
    events = peer.send(
        wire("BEGIN", {"transaction": "t"})
        + wire("COMMIT", {"transaction": "t", "receipt": "c"})
        + wire("BEGIN", {"transaction": "u"})
        + wire("SEND", {"destination": "/queue/a", "transaction": "u"}, "dropped")
        + wire("ABORT", {"transaction": "u", "receipt": "a"})
    )
    assert events == []
    assert [f.get("receipt-id") for f in peer.frames()] == ["c", "a"]


def test_disconnect_discards_open_transactions() -> None:
    peer = connected()
    events = peer.send(
        wire("BEGIN", {"transaction": "t"})
        + wire("SEND", {"destination": "/queue/a", "transaction": "t"}, "lost")
        + wire("DISCONNECT")
    )
    assert events == []
    assert list(peer.machine.events_received()) == []


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (
            wire("COMMIT", {"transaction": "nope", "receipt": "r"}),
            "no transaction 'nope' has begun",
        ),
        (wire("ABORT", {"transaction": "nope", "receipt": "r"}), "no transaction 'nope' has begun"),
        (
            wire("SEND", {"destination": "/q", "transaction": "nope", "receipt": "r"}),
            "no transaction 'nope' has begun",
        ),
        (
            wire("BEGIN", {"transaction": "t"})
            + wire("BEGIN", {"transaction": "t", "receipt": "r"}),
            "transaction 't' has already begun",
        ),
    ],
)
def test_transaction_errors(frames: str, message: str) -> None:
    peer = connected()
    assert peer.send(frames) == []
    assert_error(peer, message, receipt="r")


def test_limit_on_open_transactions() -> None:
    peer = connected(StompOptions(max_transactions=2))
    peer.send(wire("BEGIN", {"transaction": "a"}) + wire("BEGIN", {"transaction": "b"}))
    assert not peer.machine.closed
    peer.send(wire("BEGIN", {"transaction": "c", "receipt": "r"}))
    assert_error(peer, "too many open transactions (limit 2)", receipt="r")


def test_limit_on_frames_in_a_transaction() -> None:
    peer = connected(StompOptions(max_transaction_frames=2))
    send = wire("SEND", {"destination": "/queue/a", "transaction": "t"}, "x")
    peer.send(wire("BEGIN", {"transaction": "t"}) + send + send)
    assert not peer.machine.closed
    peer.send(send)
    assert_error(peer, "transaction 't' holds too many frames (limit 2)")


# -- codec limits -------------------------------------------------------------------------


def test_oversized_frame_gets_an_error() -> None:
    peer = connected(StompOptions(max_frame_bytes=100))
    peer.send(wire("SEND", {"destination": "/queue/a"}, "x" * 200))
    assert_error(peer, "frame too large (limit 100 bytes)")


def test_too_many_headers_gets_an_error() -> None:
    peer = connected(StompOptions(max_headers=2))
    peer.send(wire("SEND", {"destination": "/queue/a", "a": "1", "b": "2"}))
    assert_error(peer, "too many headers (limit 2)")


def test_too_long_header_gets_an_error() -> None:
    peer = connected(StompOptions(max_header_bytes=32))
    peer.send(wire("SEND", {"destination": "/queue/" + "a" * 40}))
    assert_error(peer, "header too long (limit 32 bytes)")


def test_malformed_frame_gets_an_error() -> None:
    peer = connected()
    peer.send("SEND\nbroken\n\n\0")
    assert_error(peer, "malformed header line")


# -- heart-beats and timeouts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        ("0,0", (10000, 10000), (0, 0)),
        ("1000,1000", (10000, 10000), (10, 10)),
        ("20000,500", (10000, 10000), (10, 20)),  # (out = max(sx, cy), in = max(cx, sy))
        ("500,20000", (1000, 2000), (20, 2)),
        ("1000,1000", (0, 0), (0, 0)),
        ("1000,0", (5000, 5000), (0, 5)),
        ("0,1000", (5000, 5000), (5, 0)),
    ],
)
def test_heart_beat_negotiation(
    client: str, server: tuple[int, int], expected: tuple[float, float]
) -> None:
    options = StompOptions(heartbeat_send_ms=server[0], heartbeat_receive_ms=server[1])
    peer = connected(options, wire("CONNECT", {"accept-version": "1.2", "heart-beat": client}))
    assert (peer.machine.heartbeat_out, peer.machine.heartbeat_in) == expected


HB = StompOptions(heartbeat_send_ms=1000, heartbeat_receive_ms=1000)
HB_CONNECT = wire("CONNECT", {"accept-version": "1.2", "heart-beat": "2000,500"})


def test_server_sends_eols_only_when_it_has_been_silent() -> None:
    peer = connected(HB, HB_CONNECT)  # out 1 s, in 2 s x 3
    assert peer.machine.next_deadline() == 1.0
    peer.tick(0.5)  # early: harmless
    assert (peer.frames(), peer.heartbeats) == ([], 0)
    peer.machine.message("0", "/topic/a", "1", [], b"")
    peer.now = 0.6
    assert len(peer.frames()) == 1
    assert peer.machine.next_deadline() == pytest.approx(1.6)
    peer.send("\n", now=1.5)  # client beats keep it alive, not the server quiet
    peer.tick(1.6)
    peer.frames()
    assert peer.heartbeats == 1
    assert peer.machine.next_deadline() == pytest.approx(2.6)


def test_silent_client_is_disconnected_after_the_tolerance() -> None:
    peer = connected(HB, HB_CONNECT)
    peer.send("\n", now=4.0)
    for now in (5.0, 6.0, 7.0, 8.0, 9.0, 9.99):
        peer.tick(now)
        peer.frames()
    assert not peer.machine.closed
    peer.tick(10.0)  # 6 s = 2 s negotiated x 3 since the client's last byte
    assert_error(
        peer, "no heart-beat from the client for 6000 ms (negotiated 2000 ms, tolerance x3)"
    )
    assert peer.machine.next_deadline() == math.inf


def test_tolerance_is_configurable() -> None:
    options = StompOptions(heartbeat_send_ms=0, heartbeat_receive_ms=1000, heartbeat_tolerance=1.5)
    peer = connected(options, HB_CONNECT)
    assert peer.machine.next_deadline() == 3.0


def test_connect_timeout() -> None:
    peer = Peer(StompOptions(connect_timeout=5))
    assert peer.machine.next_deadline() == 5
    peer.tick(4.9)
    assert peer.frames() == []
    peer.tick(5)
    assert_error(peer, "not connected within 5 s")


def test_authentication_counts_against_the_connect_timeout() -> None:
    peer = Peer(StompOptions(connect_timeout=5))
    peer.send(CONNECT)
    peer.tick(5)
    assert_error(peer, "not connected within 5 s")
