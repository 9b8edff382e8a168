"""The owner's half of a relay: requests that landed on another node, served here.

A :class:`RemoteReceiver` is attached through ``registry.attach`` exactly like a local
:class:`~.http.HttpReceiver`, so the session machine decides everything a receiver
meets (2010, close-frame replay, heartbeats, 1002, expiry, slow consumers); it differs
only in where its bytes go: wrapped frames are published to the relaying node, one
message per frame (clients read streaming responses chunk by chunk). Bytes published and
not yet acknowledged by the relaying node are bounded by ``relay_window``: past it the
receiver is paused (``begin_write``) until an acknowledgement brings it back under,
exactly like a local receiver whose socket buffer is full, so ``send_time_limit``
applies.

What it shares with the local receiver, so that the two cannot drift apart: the registry
calls (``attach``, ``detach``, ``interrupt``, ``begin_write``/``end_write``), the
machine's ``data_to_send``, :class:`~.http.ResponseFrames` (each frame wrapped by the
transport row, counted into ``bytes_out`` and against ``response_limit``, and when the
response is due to end) and :func:`~.http.refused_frame` (the answer to a busy or closed
session).

What it does not share is the loop, :func:`~.http._poll`/:func:`~.http._stream`: those
run in the task of the request they write to, and here the request is on another node;
the owner has no task per relayed response, only callbacks (a wake, an acknowledgement, a
lost client), so it pumps from them. Nor does :func:`_attach` reuse
:func:`~.http.downstream`'s steps: between the waiting-frame check and ``attach`` it
takes a place among the relayed requests, and its answers are messages, not responses.
The relaying node's writer (:mod:`.relay_client`) is the other half of ``_stream``; it
counts nothing, as the owner counted the frames.

A relayed send is delivered by :func:`~.http.deliver_body`, under the session's upstream
lock and after ``registry.room``, as a local send; its verdict goes back as status and
text.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..protocol.state import Attach
from ..protocol.transports import TRANSPORTS, TransportSpec
from . import http
from .relay import Header, Relay

if TYPE_CHECKING:
    from .session import Session

__all__ = ["RemoteReceiver", "serve"]

log = logging.getLogger("sockjs_gateway.relay")


class RemoteReceiver:
    """Carries a session's frames to a request held by another node (see the module
    docstring)."""

    frames_direct = False

    __slots__ = (
        "relay",
        "peer",
        "rid",
        "created",
        "session",
        "spec",
        "frames",
        "unacked",
        "paused",
        "done",
        "_seq",
        "_scheduled",
    )

    def __init__(
        self,
        relay: Relay,
        peer: str,
        rid: str,
        session: Session,
        spec: TransportSpec,
        callback: str,
    ) -> None:
        self.relay = relay
        self.peer = peer
        self.rid = rid
        self.created = relay.now()
        self.session = session
        self.spec = spec
        #: Wraps and counts what this response carries, as for a local one.
        self.frames = http.ResponseFrames(relay.endpoint, session, spec, callback)
        self.unacked = 0
        self.paused = False
        self.done = False
        self._seq = 0
        self._scheduled = False

    # -- Receiver ----------------------------------------------------------------------

    def wake(self) -> None:
        # Never inside the registry's bookkeeping: the pump may detach.
        if not self.done and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def abort(self) -> None:
        """Cut off as a slow consumer: the relaying node aborts its client's connection."""
        if self.session.receiver is self:
            self.session.receiver = None
        self._end({"k": "e", "x": 1})

    def write_direct(self, frame: bytes) -> bool:
        return False

    # -- Incoming ----------------------------------------------------------------------

    def drop(self) -> None:
        """The relaying node's client went away (or the node did): 1002, as locally."""
        if self.done:
            return
        self.done = True
        self.relay.incoming.pop((self.peer, self.rid), None)
        if self.session.receiver is self:
            self.relay.endpoint.registry.interrupt(self.session)

    # -- the pump ----------------------------------------------------------------------

    def acked(self, count: int) -> None:
        self.unacked = max(0, self.unacked - count)
        if self.paused and self.unacked < self.relay.window:
            self.paused = False
            self.relay.endpoint.registry.end_write(self.session)
            self.wake()

    def pump(self) -> None:
        """Publish what the session has for the client; end the response when it is due."""
        self._scheduled = False
        if self.done or self.paused:
            return
        session = self.session
        now = asyncio.get_running_loop().time()
        if not self.spec.streaming:
            taken = session.machine.data_to_send(now, limit=1)
            if taken:
                self.answer(taken[0])
            return
        frames = self.frames
        for frame in session.machine.data_to_send(now):
            data = frames.encode(frame)
            self.unacked += len(data)
            self._data(data)
        registry = self.relay.endpoint.registry
        if frames.due:
            if session.receiver is self:
                registry.detach(session)
            self._end({"k": "e"})
        elif self.unacked >= self.relay.window:
            self.paused = True
            registry.begin_write(session)

    def answer(self, frame: str) -> None:
        """Publish ``frame`` as the whole response: a poll's frame, or the answer to a
        session that is busy or closed."""
        session = self.session
        if session.receiver is self:
            self.relay.endpoint.registry.detach(session)
        self._data(self.frames.encode(frame), end=True)

    def _data(self, data: bytes, *, end: bool = False) -> None:
        header: Header = {"k": "d", "r": self.rid, "n": self._seq}
        self._seq += 1
        if end:
            header["end"] = 1
            self._finish()
        self.relay.publish(self.peer, header, data)

    def _end(self, header: Header) -> None:
        if self.done:
            return
        header["r"] = self.rid
        header["n"] = self._seq
        self._finish()
        self.relay.publish(self.peer, header)

    def _finish(self) -> None:
        self.done = True
        self.relay.incoming.pop((self.peer, self.rid), None)


class RemoteSend:
    """A relayed ``xhr_send``/``jsonp_send`` being delivered here."""

    __slots__ = ("peer", "rid", "created", "task")

    def __init__(self, peer: str, rid: str, created: float) -> None:
        self.peer = peer
        self.rid = rid
        self.created = created
        self.task: asyncio.Task[None] | None = None

    def drop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def serve(relay: Relay, peer: str, header: Header, body: bytes) -> None:
    """Handle a message a relaying node sent this owner."""
    kind = header.get("k")
    rid = header.get("r")
    if not isinstance(rid, str):
        return
    if kind == "attach":
        _attach(relay, peer, rid, header)
    elif kind == "send":
        _send(relay, peer, rid, header, body)
    elif kind == "ack":
        incoming = relay.incoming.get((peer, rid))
        count = header.get("b")
        if isinstance(incoming, RemoteReceiver) and isinstance(count, int):
            incoming.acked(count)
    elif kind == "lost":
        found = relay.incoming.get((peer, rid))
        if found is not None:
            relay.incoming.pop((peer, rid), None)
            found.drop()


def _spec(header: Header) -> TransportSpec | None:
    spec = TRANSPORTS.get(header.get("t", ""))
    return spec if spec is not None and spec.suffix == header.get("t") else None


def _attach(relay: Relay, peer: str, rid: str, header: Header) -> None:
    endpoint = relay.endpoint
    registry = endpoint.registry
    spec = _spec(header)
    session_id = header.get("s")
    callback = header.get("c") or ""
    if spec is None or not isinstance(session_id, str) or not isinstance(callback, str):
        relay.publish(peer, {"k": "e", "r": rid, "n": 0, "u": 1})
        return
    session = registry.get(session_id)
    if session is None:
        relay.publish(peer, {"k": "e", "r": rid, "n": 0, "u": 1})
        return
    receiver = RemoteReceiver(relay, peer, rid, session, spec, callback)
    if not spec.streaming:
        frames = registry.take_waiting(session)
        if frames:
            receiver.answer(frames[0])
            return
    if not relay.add_incoming(receiver):
        relay.publish(peer, {"k": "e", "r": rid, "n": 0, "x": 1})
        return
    result = registry.attach(session, receiver)
    if result is Attach.OK:
        if spec.streaming:
            relay.publish(peer, {"k": "ok", "r": rid})
        receiver.pump()
        return
    receiver.answer(http.refused_frame(session, result))


def _send(relay: Relay, peer: str, rid: str, header: Header, body: bytes) -> None:
    spec = _spec(header)
    session_id = header.get("s")
    if spec is None or not isinstance(session_id, str):
        relay.publish(peer, {"k": "v", "r": rid, "st": 404})
        return
    item = RemoteSend(peer, rid, relay.now())
    if not relay.add_incoming(item):
        relay.publish(peer, {"k": "v", "r": rid, "st": 503}, b"Too many relayed requests.")
        return
    item.task = asyncio.get_running_loop().create_task(
        _deliver(relay, item, session_id, spec, bool(header.get("form")), body)
    )


async def _deliver(
    relay: Relay, item: RemoteSend, session_id: str, spec: TransportSpec, form: bool, body: bytes
) -> None:
    registry = relay.endpoint.registry
    status, text = 204, b""
    try:
        session = registry.get(session_id)
        if session is None or session.closed:
            status = 404
        else:
            async with registry.upstream(session):
                await registry.room(session)
                answer = http.deliver_body(relay.endpoint, session, body, form=form)
            if answer is not None:
                status, text = answer.status, bytes(answer.body or b"")  # type: ignore[arg-type]
            elif spec.needs_callback:
                status, text = 200, b"ok"
    except asyncio.CancelledError:
        relay.incoming.pop((item.peer, item.rid), None)
        raise
    except Exception:  # a bug of ours: answer, and say so
        log.exception("relay: delivering a relayed send failed")
        status, text = 500, b"Relay failed."
    if relay.incoming.pop((item.peer, item.rid), None) is not None:
        relay.publish(item.peer, {"k": "v", "r": item.rid, "st": status}, text)


def install(relay: Relay) -> None:
    """Make ``relay`` serve what relaying nodes send this owner."""
    relay.serve = lambda peer, header, body: serve(relay, peer, header, body)
