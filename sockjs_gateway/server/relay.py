"""``Relay``: any node answers any HTTP session, by relaying to the session's owner.

A session lives on one node, its *owner* (where its handler runs), found through the
backplane's :mod:`~sockjs_gateway.backplane.directory`. A request that lands on another
node is relayed over the backplane, so HTTP fallbacks work behind a plain round-robin
balancer:

* **upstream** (``xhr_send``, ``jsonp_send``): the relaying node reads the body (within
  ``max_message_bytes`` and ``body_timeout``, as locally) and forwards it; the owner
  parses, validates and delivers it exactly as a local send (same upstream lock and
  handler-room wait, so order and backpressure hold) and answers its verdict, which the
  relaying node returns (:mod:`.relay_client`, :mod:`.relay_owner`);
* **downstream** (``xhr``, ``xhr_streaming``, ``eventsource``, ``htmlfile``, ``jsonp``):
  the relaying node writes headers and prelude (it has the request: CORS, cookies,
  callback) and attaches a :class:`~.relay_owner.RemoteReceiver` to the session on the
  owner through ``registry.attach``, like a local receiver, so heartbeats, 2010, close
  replay, 1002, expiry and ``response_limit`` come from the same code. The owner
  publishes the wrapped frames; the relaying node writes them and acknowledges what it
  wrote, and the owner keeps at most ``relay_window`` bytes unacknowledged (past it the
  receiver is *paused* like a local one whose socket buffer is full, so
  ``send_time_limit`` and the slow-consumer policy apply).

Wire: every node's endpoint subscribes to ``relay:<node id>:<prefix>``. A message is a
compact JSON header (kind, sender, request id and the few fields of that kind), a newline,
then raw bytes (a body or wrapped frames): JSON because the header is tiny and stays
readable in ``redis-cli monitor``; raw bytes after it, so bodies and frames are never
escaped twice. See :func:`pack` for the kinds.

Leases, so that nothing hangs and nothing is duplicated when a node or the bus fails.
Every ``relay_timeout / 3`` seconds a node sends each peer it has relays with a ``keep``
message listing the request ids it holds with that peer, in both roles. A node that hears
nothing from a peer for ``relay_timeout`` seconds gives up on every relay with it: the
relaying node ends each receiving request with ``c[1011,"Session owner unreachable"]``
(:data:`OWNER_UNREACHABLE`) and each send with 503; the owner treats each remote receiver
as a client gone away (1002, as on one node). A relay that a ``keep`` of the peer no longer
lists (a message lost in a broken Redis connection) ends the same way. Frames carry a
sequence number: a gap ends the response with the same close frame rather than a stream
with a hole.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..backplane.base import Backplane
from ..backplane.directory import Directory

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .session import Session

__all__ = [
    "Relay",
    "Outgoing",
    "Incoming",
    "RelayFull",
    "RelayStats",
    "OWNER_UNREACHABLE",
    "pack",
    "unpack",
]

log = logging.getLogger("sockjs_gateway.relay")

#: Close code and reason that end a relayed receiving request whose owner cannot be
#: reached (it died, or the bus is down): sockjs-client reports the close and reconnects.
OWNER_UNREACHABLE = (1011, "Session owner unreachable")

Header = dict[str, Any]
#: Session owners a node remembers (each relayed session costs one entry; oldest go first).
_OWNER_CACHE = 10_000


def pack(header: Header, body: bytes = b"") -> bytes:
    """One relay message. Kinds, relaying node to owner: ``attach`` (s session, t
    transport suffix, c callback), ``send`` (s, t, form; body), ``ack`` (b bytes written),
    ``lost``; owner to relaying node: ``ok`` (attached), ``d`` (n sequence, end; wrapped
    frame bytes), ``e`` (n, u unknown session, x cut off), ``v`` (st status; text);
    both ways: ``keep`` (o ids the sender relays to the receiver, i ids it serves for it).
    Every header has k (kind), f (sender node) and, but ``keep``, r (request id)."""
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def unpack(payload: bytes) -> tuple[Header, bytes]:
    """The header and body of a relay message (raises ValueError if malformed)."""
    head, newline, body = payload.partition(b"\n")
    if not newline:
        raise ValueError("no header")
    header = json.loads(head)
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    return header, body


class RelayStats:
    """Counters of one endpoint's relaying on one node (read by the metrics)."""

    __slots__ = ("requests", "bytes", "failures")

    def __init__(self) -> None:
        self.requests = 0  #: requests of sessions owned elsewhere, relayed there
        self.bytes = 0  #: relay messages published and received, in bytes
        self.failures = 0  #: relays given up because the other node fell silent


class RelayFull(Exception):
    """``max_relays`` relayed requests are in progress on this node already."""


class Incoming(Protocol):
    """What the owner holds for a request relayed to it: a remote receiver or a send."""

    peer: str
    rid: str
    created: float

    def drop(self) -> None:
        """The relaying node is gone, or no longer holds the request."""


class Outgoing:
    """A request this node relays to an owner: the owner's messages, in order, for the
    request's task."""

    __slots__ = (
        "rid",
        "owner",
        "created",
        "accepted",
        "ended",
        "writing",
        "on_cut",
        "_queue",
        "_waiter",
        "_next",
    )

    def __init__(self, rid: str, owner: str, now: float) -> None:
        self.rid = rid
        self.owner = owner
        self.created = now
        #: The owner has it (a message came back, or its ``keep`` listed it).
        self.accepted = False
        #: The owner ended it, or it failed: no ``lost`` needs to be sent.
        self.ended = False
        #: The request's task is in a write to its client (which may never end).
        self.writing = False
        #: Cuts the client's connection off (set by a streaming request).
        self.on_cut: Callable[[], None] | None = None
        self._queue: list[tuple[Header, bytes]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._next = 0  # the sequence number of the next frame

    def push(self, header: Header, body: bytes) -> None:
        if self.ended:
            return
        self.accepted = True
        seq = header.get("n")
        if seq is not None:
            if seq != self._next:
                self.fail("a relayed frame was lost")
                return
            self._next += 1
        if header["k"] in ("e", "v") or header.get("end"):
            self.ended = True
            if header.get("x"):
                self._cut()  # a slow consumer on the owner: cut off, as locally
        self._put(header, body)

    def _cut(self) -> None:
        if self.on_cut is not None:
            self.on_cut()

    def fail(self, why: str) -> None:
        """End the relay: the request's task gets a ``fail`` message."""
        if not self.ended:
            self.ended = True
            if self.writing:
                self._cut()  # a write stuck on a client that does not read never ends
            self._put({"k": "fail", "why": why}, b"")

    def lose(self) -> None:
        """The client of the relaying request went away."""
        self._put({"k": "lost"}, b"")

    def _put(self, header: Header, body: bytes) -> None:
        self._queue.append((header, body))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> tuple[Header, bytes]:
        """The next message (waits for it)."""
        while not self._queue:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queue.pop(0)


class Relay:
    """The relaying of one endpoint on one node (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, backplane: Backplane, directory: Directory) -> None:
        self.endpoint = endpoint
        #: Relayed requests, bytes and failures (see :mod:`sockjs_gateway.metrics`).
        self.stats = RelayStats()
        self.backplane = backplane
        self.directory = directory
        self.node = backplane.node_id
        self.prefix = endpoint.prefix or "/"
        options = endpoint.options
        self.timeout = options.relay_timeout
        self.window = options.relay_window
        self.max_relays = options.max_relays
        #: Requests relayed from here, by request id.
        self.outgoing: dict[str, Outgoing] = {}
        #: Requests relayed here, by (relaying node, request id).
        self.incoming: dict[tuple[str, str], Incoming] = {}
        self._heard: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._directory_down = False
        # The owners of sessions relayed lately, so that the next request of a session
        # skips the directory round trip; dropped when the owner does not answer for it.
        self._owners: dict[str, str] = {}
        # Sessions opened here while the directory was unreachable: claimed once it is back.
        self.unclaimed: set[str] = set()
        self._reclaiming: asyncio.Task[None] | None = None
        self._reclaim_timer: asyncio.TimerHandle | None = None
        self._subscription = backplane.subscribe(self._channel(self.node), self._received)
        # Set by relay_owner (imported lazily there to keep this module the seam).
        self.serve: Callable[[str, Header, bytes], None] | None = None

    def _channel(self, node: str) -> str:
        return f"relay:{node}:{self.prefix}"

    def key(self, session_id: str) -> str:
        """The directory key of a session of this endpoint."""
        return f"{self.prefix}:{session_id}"

    def now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def close(self) -> None:
        self._subscription.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reclaiming is not None:
            self._reclaiming.cancel()
        if self._reclaim_timer is not None:
            self._reclaim_timer.cancel()

    # -- ownership ---------------------------------------------------------------------

    def cached_owner(self, session_id: str) -> str | None:
        """The owner this node relayed ``session_id`` to lately, if any."""
        return self._owners.get(session_id)

    def remember(self, session_id: str, owner: str) -> None:
        owners = self._owners
        if session_id not in owners and len(owners) >= _OWNER_CACHE:
            del owners[next(iter(owners))]  # the oldest
        owners[session_id] = owner

    def forget_owner(self, session_id: str) -> None:
        self._owners.pop(session_id, None)

    def forgotten(self, session: Session) -> None:
        """A session of this endpoint was forgotten here: its key is free again."""
        self.unclaimed.discard(session.id)
        self.directory.release(self.key(session.id))

    def directory_failed(self, error: Exception) -> None:
        """Log once per outage that the directory cannot be reached."""
        if not self._directory_down:
            self._directory_down = True
            log.warning(
                "relay %s: session directory unreachable (%s); new sessions are opened"
                " here without a claim, and requests for sessions of other nodes fail",
                self.prefix,
                error,
            )

    def directory_answered(self) -> None:
        if self._directory_down:
            self._directory_down = False
            log.info("relay %s: session directory reachable again", self.prefix)

    def opened_unclaimed(self, session_id: str) -> None:
        """A session opens here without a claim (the directory is unreachable): claim it
        once the directory answers again, trying every ``relay_timeout / 3`` seconds."""
        self.unclaimed.add(session_id)
        self._schedule_reclaim()

    def _schedule_reclaim(self) -> None:
        if self._reclaiming is None and self._reclaim_timer is None:
            loop = asyncio.get_running_loop()
            self._reclaim_timer = loop.call_later(self.timeout / 3, self._start_reclaim)

    def _start_reclaim(self) -> None:
        self._reclaim_timer = None
        if self.unclaimed and self._reclaiming is None:
            self._reclaiming = asyncio.get_running_loop().create_task(self._reclaim())

    async def _reclaim(self) -> None:
        """Claim the sessions opened here during an outage, so that other nodes relay to
        them again; one whose id another node claimed meanwhile stays unreachable from
        there (two sessions share the id; logged)."""
        try:
            while self.unclaimed:
                session_id = next(iter(self.unclaimed))
                owner = await self.directory.claim(self.key(session_id))
                self.unclaimed.discard(session_id)
                if owner != self.node:
                    log.warning(
                        "relay %s: session %r opened here during the outage is also owned"
                        " by node %s; requests reaching other nodes go there",
                        self.prefix,
                        session_id,
                        owner,
                    )
        except Exception as error:  # BackplaneUnavailable, mostly: try again later
            self.directory_failed(error)
        finally:
            self._reclaiming = None
            if self.unclaimed:
                self._schedule_reclaim()

    # -- messages ----------------------------------------------------------------------

    def publish(self, node: str, header: Header, body: bytes = b"") -> None:
        header["f"] = self.node
        payload = pack(header, body)
        self.stats.bytes += len(payload)
        self.backplane.publish(self._channel(node), payload)

    def open(self, owner: str) -> Outgoing:
        """A new relayed request to ``owner``.

        Raises:
            RelayFull: ``max_relays`` relayed requests are in progress here.
        """
        if len(self.outgoing) + len(self.incoming) >= self.max_relays:
            raise RelayFull()
        rid = f"{next(self._ids):x}"
        item = Outgoing(rid, owner, self.now())
        self.outgoing[rid] = item
        self.stats.requests += 1
        self._arm()
        return item

    def finish(self, item: Outgoing) -> None:
        """The relaying request ended: tell the owner if it still holds it."""
        if self.outgoing.pop(item.rid, None) is None:
            return
        if not item.ended:
            item.ended = True
            self.publish(item.owner, {"k": "lost", "r": item.rid})

    def add_incoming(self, item: Incoming) -> bool:
        """Hold a request relayed here; False if ``max_relays`` are in progress."""
        if len(self.outgoing) + len(self.incoming) >= self.max_relays:
            return False
        self.incoming[(item.peer, item.rid)] = item
        self._arm()
        return True

    def _received(self, payload: bytes) -> None:
        try:
            header, body = unpack(payload)
            kind = header["k"]
            peer = header["f"]
        except (ValueError, KeyError, TypeError):
            log.warning("relay %s: malformed message ignored", self.prefix)
            return
        self.stats.bytes += len(payload)
        self._heard[peer] = self.now()
        if kind == "keep":
            self._kept(peer, header)
            return
        rid = header.get("r")
        if kind in ("ok", "d", "e", "v"):
            item = self.outgoing.get(rid) if isinstance(rid, str) else None
            if item is not None and item.owner == peer:
                item.push(header, body)
            return
        if self.serve is not None:
            self.serve(peer, header, body)

    # -- leases ------------------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None:
            loop = self._loop or asyncio.get_running_loop()
            self._loop = loop
            self._timer = loop.call_later(self.timeout / 3, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self.now()
        peers: dict[str, tuple[list[str], list[str]]] = {}
        for item in self.outgoing.values():
            peers.setdefault(item.owner, ([], []))[0].append(item.rid)
        for peer, rid in self.incoming:
            peers.setdefault(peer, ([], []))[1].append(rid)
        for peer, (out, inc) in peers.items():
            self.publish(peer, {"k": "keep", "o": out, "i": inc})
        silent = now - self.timeout
        for item in list(self.outgoing.values()):
            if max(self._heard.get(item.owner, 0.0), item.created) < silent:
                self._fail(item, "no word from the owner node")
        for incoming in list(self.incoming.values()):
            if max(self._heard.get(incoming.peer, 0.0), incoming.created) < silent:
                self._drop(incoming, "no word from the relaying node")
        for peer in list(self._heard):
            if peer not in peers:
                del self._heard[peer]
        if self.outgoing or self.incoming:
            self._arm()

    def _kept(self, peer: str, header: Header) -> None:
        """``peer`` lists what it holds with us: what it no longer holds is over."""
        held_there = set(header.get("o") or ())  # it relays these to us
        for (from_peer, rid), incoming in list(self.incoming.items()):
            if from_peer == peer and rid not in held_there:
                self._drop(incoming, "the relaying node no longer holds the request")
        served_there = set(header.get("i") or ())  # it serves these for us
        stale = self.now() - self.timeout
        for item in list(self.outgoing.values()):
            if item.owner != peer or item.ended:
                continue
            if item.rid in served_there:
                item.accepted = True
            elif item.accepted or item.created < stale:
                self._fail(item, "the owner node no longer holds the request")

    def _fail(self, item: Outgoing, why: str) -> None:
        if any(owner == item.owner for owner in self._owners.values()):
            self._owners = {s: o for s, o in self._owners.items() if o != item.owner}
        if not item.ended:
            self.stats.failures += 1
            log.warning(
                "relay %s: request %s to node %s failed: %s", self.prefix, item.rid, item.owner, why
            )
        item.fail(why)

    def _drop(self, incoming: Incoming, why: str) -> None:
        if self.incoming.pop((incoming.peer, incoming.rid), None) is None:
            return
        self.stats.failures += 1
        log.warning(
            "relay %s: request %s from node %s dropped: %s",
            self.prefix,
            incoming.rid,
            incoming.peer,
            why,
        )
        incoming.drop()
