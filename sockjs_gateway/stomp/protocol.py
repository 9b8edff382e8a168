"""One STOMP client connection as a pure object: bytes and times in, frames and events out.

Theory of operation
-------------------
::

    AWAITING_CONNECT ──CONNECT/STOMP──▶ AUTHENTICATING ──accept()──▶ CONNECTED
            │                                 │ reject()                 │ DISCONNECT, error,
            └──────────── error, timeout ─────┴──────────────────────────┴─ silence ──▶ CLOSED

The owner feeds what the client sent (:meth:`StompMachine.receive_data`), then iterates
:meth:`StompMachine.events_received` (the verbs of
:class:`~sockjs_gateway.protocol.state.SessionMachine` too). The iterator is lazy: each
frame is decoded when the owner has handled the event before it, so a failure or an
authentication in progress stops it where it stands. The machine answers what it can
alone (heart-beats, BEGIN/ABORT, frames buffered in a transaction, DISCONNECT, protocol
errors) and hands out the rest as events (:mod:`.events`): :class:`ConnectRequest`,
:class:`Subscribe`, :class:`Unsubscribe`, :class:`Send`, :class:`Ack`, :class:`Nack`.
For each event the owner calls :meth:`~StompMachine.complete` (a RECEIPT goes out if the
frame asked for one) or :meth:`~StompMachine.fail` (an ERROR, then CLOSED). A
:class:`ConnectRequest` is answered with :meth:`~StompMachine.accept` or
:meth:`~StompMachine.reject`; until then no further frame is read, so nothing is handled
before the client is authenticated.

Frames for the client are taken with :meth:`~StompMachine.data_to_send`, one text per
frame (SockJS carries text). Time is passed in: the owner arms one timer at
:meth:`~StompMachine.next_deadline` and calls :meth:`~StompMachine.timer_fired`, which
sends a heart-beat EOL after ``out`` seconds of server silence, and ends the connection
with an ERROR when the client has been silent for ``in * heartbeat_tolerance`` seconds
(STOMP 1.2, "Heart-beating"), or has not connected within ``connect_timeout``.

This module never imports asyncio; the broker and the SockJS glue live elsewhere.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from ..exceptions import LocalProtocolError
from .errors import LimitExceeded, StompError
from .events import Ack, ConnectRequest, Event, Nack, Send, Subscribe, Unsubscribe
from .frames import SERVER_COMMANDS, Frame, FrameDecoder, encode_text
from .options import StompOptions

__all__ = ["ConnectionState", "StompMachine", "ACK_MODES", "HEARTBEAT_EOL"]

#: The SUBSCRIBE ``ack`` modes (STOMP 1.2, "SUBSCRIBE ack Header").
ACK_MODES = frozenset({"auto", "client", "client-individual"})
#: What a heart-beat looks like on the wire.
HEARTBEAT_EOL = "\n"
_Transactable = Send | Ack | Nack


class ConnectionState(enum.Enum):
    """Where a connection is in its life."""

    AWAITING_CONNECT = "awaiting-connect"
    AUTHENTICATING = "authenticating"
    CONNECTED = "connected"
    CLOSED = "closed"


def _required(frame: Frame, name: str) -> str:
    value = frame.get(name)
    if not value:
        raise StompError(f"{frame.command} frame needs a {name} header")
    return value


def _heartbeat(frame: Frame) -> tuple[int, int]:
    raw = frame.get("heart-beat", "0,0") or "0,0"
    parts = raw.split(",")
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise StompError(f"invalid heart-beat header {raw[:32]!r}: expected two integers")
    return int(parts[0]), int(parts[1])


class StompMachine:
    """One client's STOMP connection; see the module docstring."""

    def __init__(self, now: float, session_id: str, options: StompOptions | None = None) -> None:
        self.options = options or StompOptions()
        #: The ``session`` header of CONNECTED.
        self.session_id = session_id
        self.state = ConnectionState.AWAITING_CONNECT
        #: The negotiated version, once CONNECT was read.
        self.version: str | None = None
        #: Negotiated heart-beat periods in seconds (0 = none): server-to-client, and
        #: client-to-server.
        self.heartbeat_out = 0.0
        self.heartbeat_in = 0.0
        #: The ``message`` of the ERROR that closed the connection, if one did.
        self.error_message: str | None = None
        self._decoder = FrameDecoder(self.options.frame_limits)
        self._outbox: list[str] = []
        self._ready: deque[Event] = deque()  # committed transaction events
        self._transactions: dict[str, list[_Transactable]] = {}
        self._transaction_bytes: dict[str, int] = {}  # per open transaction
        self._opened_at = self._last_in = self._last_out = now
        self._handlers: dict[str, Callable[[Frame], Event | None]] = {
            "SEND": self._send,
            "SUBSCRIBE": self._subscribe,
            "UNSUBSCRIBE": self._unsubscribe,
            "ACK": self._ack,
            "NACK": self._ack,
            "BEGIN": self._begin,
            "COMMIT": self._commit,
            "ABORT": self._abort,
            "DISCONNECT": self._disconnect,
        }

    @property
    def closed(self) -> bool:
        """True once the connection has ended (after ERROR, DISCONNECT or a timeout)."""
        return self.state is ConnectionState.CLOSED

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes | str, now: float) -> None:
        """The client sent ``data``; any bytes at all count as a sign of life."""
        if self.closed:
            return
        self._last_in = now
        try:
            self._decoder.receive_data(data)
        except StompError as error:
            self.fail_with(error)

    def events_received(self) -> Iterator[Event]:
        """What the owner must handle, one event at a time, until more data is needed (or
        the connection waits for :meth:`accept`, or has closed)."""
        while (event := self._next_event()) is not None:
            yield event

    def _next_event(self) -> Event | None:
        """The next thing the owner must handle, or None until more data arrives."""
        while self.state is not ConnectionState.CLOSED:
            if self._ready:
                return self._ready.popleft()
            if self.state is ConnectionState.AUTHENTICATING:
                return None
            try:
                frame = self._decoder.next_frame()
            except StompError as error:
                self.fail_with(error)
                return None
            if frame is None:
                return None
            try:
                event = self._handle(frame)
            except StompError as error:
                self.fail_with(error, frame.get("receipt"))
                return None
            if event is not None:
                return event
        return None

    def _handle(self, frame: Frame) -> Event | None:
        command = frame.command
        if command in SERVER_COMMANDS:
            raise StompError(f"{command} is a server frame; clients cannot send it")
        if self.state is ConnectionState.AWAITING_CONNECT:
            if command not in ("CONNECT", "STOMP"):
                raise StompError(f"expected CONNECT or STOMP, got {command}")
            return self._connect(frame)
        if command in ("CONNECT", "STOMP"):
            raise StompError("already connected")
        return self._handlers[command](frame)

    # -- frames ------------------------------------------------------------------------

    def _connect(self, frame: Frame) -> Event:
        offered = [v.strip() for v in (frame.get("accept-version") or "1.0").split(",")]
        common = [v for v in self.options.versions if v in offered]
        if not common:
            supported = ",".join(self.options.versions)
            raise StompError(
                f"unsupported STOMP version; this server speaks {supported}",
                headers=(("version", supported),),
            )
        version = common[-1]
        if version != "1.0":
            client_out, client_in = _heartbeat(frame)
            server_out, server_in = (
                self.options.heartbeat_send_ms,
                self.options.heartbeat_receive_ms,
            )
            self.heartbeat_out = (
                max(server_out, client_in) / 1000 if server_out and client_in else 0
            )
            self.heartbeat_in = max(client_out, server_in) / 1000 if client_out and server_in else 0
        self.version = self._decoder.version = version
        self.state = ConnectionState.AUTHENTICATING
        return ConnectRequest(
            version, frame.get("host"), frame.get("login"), frame.get("passcode"), frame
        )

    def _send(self, frame: Frame) -> Event | None:
        return self._maybe_transact(
            frame, Send(_required(frame, "destination"), frame, frame.get("receipt"))
        )

    def _subscribe(self, frame: Frame) -> Event:
        destination = _required(frame, "destination")
        sub_id = frame.get("id") or (destination if self.version == "1.0" else None)
        if not sub_id:
            raise StompError("SUBSCRIBE frame needs an id header")
        ack = frame.get("ack") or "auto"
        if ack not in ACK_MODES:
            raise StompError(
                f"invalid ack mode {ack[:32]!r}: use auto, client or client-individual"
            )
        return Subscribe(sub_id, destination, ack, frame, frame.get("receipt"))

    def _unsubscribe(self, frame: Frame) -> Event:
        sub_id = frame.get("id") or (frame.get("destination") if self.version == "1.0" else None)
        if not sub_id:
            raise StompError("UNSUBSCRIBE frame needs an id header")
        return Unsubscribe(sub_id, frame.get("receipt"))

    def _ack(self, frame: Frame) -> Event | None:
        ack_id = frame.get("id") or frame.get("message-id")
        if not ack_id:
            raise StompError(f"{frame.command} frame needs an id header")
        kind = Ack if frame.command == "ACK" else Nack
        return self._maybe_transact(frame, kind(ack_id, frame.get("receipt")))

    def _maybe_transact(self, frame: Frame, event: _Transactable) -> Event | None:
        name = frame.get("transaction")
        if name is None:
            return event
        held = self._transaction(name)
        if len(held) >= self.options.max_transaction_frames:
            limit = self.options.max_transaction_frames
            raise LimitExceeded(f"transaction {name[:64]!r} holds too many frames (limit {limit})")
        size = _frame_size(frame)
        limit = self.options.max_transaction_bytes
        if sum(self._transaction_bytes.values()) + size > limit:
            raise LimitExceeded(
                f"open transactions hold too many bytes (max_transaction_bytes={limit})"
            )
        self._transaction_bytes[name] += size
        held.append(replace(event, receipt=None))
        self._receipt(event.receipt)
        return None

    def _transaction(self, name: str) -> list[_Transactable]:
        held = self._transactions.get(name)
        if held is None:
            raise StompError(f"no transaction {name[:64]!r} has begun")
        return held

    def _begin(self, frame: Frame) -> None:
        name = _required(frame, "transaction")
        if name in self._transactions:
            raise StompError(f"transaction {name[:64]!r} has already begun")
        if len(self._transactions) >= self.options.max_transactions:
            raise LimitExceeded(
                f"too many open transactions (limit {self.options.max_transactions})"
            )
        self._transactions[name] = []
        self._transaction_bytes[name] = 0
        self._receipt(frame.get("receipt"))

    def _commit(self, frame: Frame) -> None:
        name = _required(frame, "transaction")
        held = self._transaction(name)
        del self._transactions[name], self._transaction_bytes[name]
        receipt = frame.get("receipt")
        if held:
            # The COMMIT's receipt rides on the last event, so it goes out only once the
            # owner has handled every frame of the transaction.
            held[-1] = replace(held[-1], receipt=receipt)
            self._ready.extend(held)
        else:
            self._receipt(receipt)

    def _abort(self, frame: Frame) -> None:
        name = _required(frame, "transaction")
        self._transaction(name)
        del self._transactions[name], self._transaction_bytes[name]
        self._receipt(frame.get("receipt"))

    def _disconnect(self, frame: Frame) -> None:
        self._receipt(frame.get("receipt"))
        self._transactions.clear()
        self._transaction_bytes.clear()
        self.state = ConnectionState.CLOSED

    # -- answers from the owner --------------------------------------------------------

    def accept(self, user: str | None = None) -> None:
        """Answer the :class:`ConnectRequest`: CONNECTED, as ``user`` if given."""
        if self.state is not ConnectionState.AUTHENTICATING:
            raise LocalProtocolError(f"accept() in state {self.state.value}")
        headers = [("version", self.version or "1.0")]
        if self.version != "1.0":
            hb = f"{self.options.heartbeat_send_ms},{self.options.heartbeat_receive_ms}"
            headers.append(("heart-beat", hb))
        headers += [("server", self.options.server), ("session", self.session_id)]
        if user is not None:
            headers.append(("user-name", user))
        self.state = ConnectionState.CONNECTED
        self._emit(Frame("CONNECTED", tuple(headers)))

    def reject(self, message: str, details: str = "") -> None:
        """Refuse the :class:`ConnectRequest` with an ERROR, and close."""
        self.error(message, details)

    def complete(self, event: Event, headers: Iterable[tuple[str, str]] = ()) -> None:
        """The owner handled ``event``: send its RECEIPT, if the frame asked for one (with
        ``headers`` after ``receipt-id``)."""
        self._receipt(event.receipt, headers)

    def fail(self, event: Event, error: StompError) -> None:
        """The owner refused ``event``: an ERROR naming its receipt, then close."""
        self.fail_with(error, event.receipt)

    def fail_with(self, error: StompError, receipt: str | None = None) -> None:
        """An ERROR frame for ``error`` (with ``receipt-id`` if given), then close."""
        self.error(error.message, error.details, receipt=receipt, headers=error.headers)

    def error(
        self,
        message: str,
        details: str = "",
        *,
        receipt: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send an ERROR frame with ``message`` and close (STOMP 1.2, "ERROR")."""
        if self.closed:
            return
        fields = [("message", message), ("content-type", "text/plain;charset=utf-8")]
        if receipt is not None:
            fields.append(("receipt-id", receipt))
        self._emit(Frame.build("ERROR", fields + list(headers), details))
        self.error_message = message
        self.state = ConnectionState.CLOSED
        self._transactions.clear()  # what they held is never delivered: free it now
        self._transaction_bytes.clear()

    def message(
        self,
        subscription: str,
        destination: str,
        message_id: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        ack: str | None = None,
    ) -> bool:
        """Queue a MESSAGE for subscription ``subscription``.

        ``ack`` is the id the client must ACK (sent as the ``ack`` header in 1.2; older
        versions ACK by ``message-id``). Returns False if the connection is not CONNECTED.
        """
        if self.state is not ConnectionState.CONNECTED:
            return False
        fields = [
            ("subscription", subscription),
            ("message-id", message_id),
            ("destination", destination),
        ]
        if ack is not None and self.version == "1.2":
            fields.append(("ack", ack))
        extra = list(headers)
        if not any(name == "content-type" for name, _ in extra):
            fields.append(("content-type", "text/plain;charset=utf-8"))
        self._emit(Frame.build("MESSAGE", fields + extra, body))
        return True

    def _receipt(self, receipt: str | None, headers: Iterable[tuple[str, str]] = ()) -> None:
        if receipt is not None and not self.closed:
            self._emit(Frame("RECEIPT", (("receipt-id", receipt), *headers)))

    def _emit(self, frame: Frame) -> None:
        # Before CONNECTED the client cannot know the version, and CONNECTED itself is
        # never escaped: those go out as 1.0, unescaped. What a version cannot carry is
        # replaced rather than refused, so one odd header never breaks a connection.
        connected = self.state is ConnectionState.CONNECTED and frame.command != "CONNECTED"
        version = (self.version or "1.0") if connected else "1.0"
        headers = tuple(_representable(version, k, v) for k, v in frame.headers)
        self._outbox.append(encode_text(replace(frame, headers=headers), version))

    # -- output and time ---------------------------------------------------------------

    def data_to_send(self, now: float) -> list[str]:
        """Frames for the client, oldest first, each a complete frame's text."""
        out = self._outbox
        if out:
            self._outbox = []
            self._last_out = now
        return out

    def next_deadline(self) -> float:
        """When :meth:`timer_fired` next has something to do (``inf`` for never)."""
        if self.state is ConnectionState.CLOSED:
            return math.inf
        if self.state is not ConnectionState.CONNECTED:
            return self._opened_at + self.options.connect_timeout
        deadline = math.inf
        if self.heartbeat_out:
            deadline = self._last_out + self.heartbeat_out
        if self.heartbeat_in:
            silence = self.heartbeat_in * self.options.heartbeat_tolerance
            deadline = min(deadline, self._last_in + silence)
        return deadline

    def timer_fired(self, now: float) -> None:
        """Advance the clocks to ``now``; early calls are harmless."""
        if self.state is ConnectionState.CLOSED:
            return
        if self.state is not ConnectionState.CONNECTED:
            if now >= self._opened_at + self.options.connect_timeout:
                timeout = self.options.connect_timeout
                self.error(f"not connected within {timeout:g} s")
            return
        silence = self.heartbeat_in * self.options.heartbeat_tolerance
        if self.heartbeat_in and now >= self._last_in + silence:
            self.error(
                f"no heart-beat from the client for {silence * 1000:.0f} ms "
                f"(negotiated {self.heartbeat_in * 1000:.0f} ms, "
                f"tolerance x{self.options.heartbeat_tolerance:g})"
            )
            return
        if self.heartbeat_out and now >= self._last_out + self.heartbeat_out:
            if not self._outbox:
                self._outbox.append(HEARTBEAT_EOL)
            self._last_out = now


def _frame_size(frame: Frame) -> int:
    """Bytes a held frame counts for against ``max_transaction_bytes``."""
    return len(frame.body) + sum(len(k) + len(v) + 2 for k, v in frame.headers)


def _representable(version: str, name: str, value: str) -> tuple[str, str]:
    """A header pair ``version`` can carry: NUL dropped; CR (and, for 1.0, LF) made a
    space; for 1.0 a ':' in a name made '_'."""
    bad = {"1.2": "\0", "1.1": "\0\r"}.get(version, "\0\r\n")
    if any(char in name or char in value for char in bad) or (version == "1.0" and ":" in name):
        table = {ord("\0"): None, ord("\r"): " ", ord("\n"): " "}
        if version == "1.2":
            table = {ord("\0"): None}
        elif version == "1.1":
            del table[ord("\n")]
        name, value = name.translate(table), value.translate(table)
        if version == "1.0":
            name = name.replace(":", "_")
    return name, value
