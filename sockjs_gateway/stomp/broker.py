"""The in-process STOMP broker: destinations, subscriptions, acks, app handlers, hooks.

Destinations, by prefix:

* ``/topic/…``: every subscriber gets every message.
* ``/queue/…``: each message goes to one subscriber, round-robin. A consumer in ``client``
  or ``client-individual`` mode holds a message until it ACKs it; a NACK, an UNSUBSCRIBE
  or a disconnect puts its unacknowledged messages back at the head of the queue, marked
  ``redelivered:true``. Messages wait while nobody can take them (up to ``max_queued``).
  A queue with no messages and no consumers is forgotten at once.
* ``/user/queue/…``: subscribed to like a queue, but filled only by the server
  (:meth:`Broker.send_to_user`, :meth:`AppMessage.reply`): a message for a user reaches
  every session of that user (a reply reaches only the sender's session).
* the application prefix (``/app/`` by default): a SEND runs the handler registered with
  :meth:`Broker.message_mapping`, as Spring's ``@MessageMapping`` does.

Memory is bounded broker-wide: ``max_destinations`` destinations at once, and
``max_queued_bytes`` of messages held (waiting in queues, or delivered and unacknowledged).
Crossing either is the client's fault and gets an ERROR naming the option.

Header values are only ever compared and copied, never evaluated (a SUBSCRIBE ``selector``
is ignored; Spring's CVE-2018-1270 came from evaluating one).

With history (``Broker(history=HistoryLimits(...))``), every ``/topic/`` message gets an
offset, recent ones are retained, and a SUBSCRIBE may resume from a point with RabbitMQ's
``x-stream-offset`` header (:mod:`.streams` says how).

Seams for many nodes: topic traffic leaves through :attr:`Broker.topic_relay`, a
``(destination, Payload)`` callable whose default, :meth:`Broker.deliver_topic`, fans out in
this process, and messages for a user through :attr:`Broker.user_relay` (default
:meth:`Broker.deliver_user`). :class:`sockjs_gateway.backplane.BrokerBridge` replaces both
to publish on a backplane and calls the defaults on every node. Queues stay node-local:
a ``/queue/`` message reaches only consumers connected to the node it was sent to
(``sockjs_gateway.stomp.bridge`` says why).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..exceptions import LocalProtocolError
from ..handler import check_hook
from ..history import ChannelHub, Cursor, Entry, HistoryLimits, HistoryStore
from ..info import ConnectionInfo
from ..logs import refusal
from .errors import LimitExceeded, NotAuthorized, StompError
from .events import (
    Ack,
    Acknowledgement,
    ConnectRequest,
    Event,
    Nack,
    Send,
    Subscribe,
    Unsubscribe,
)
from .messages import RESERVED_HEADERS, AppMessage, Headers, MessageHandler, Payload
from .options import StompOptions
from .protocol import ConnectionState, StompMachine
from .streams import (
    RECOVERED_HEADER,
    HubTopics,
    recovery_headers,
    requested_start,
    stamped,
    unstamped,
)

__all__ = ["Broker", "Client", "Subscription", "Authenticate", "Authorize"]

log = logging.getLogger("sockjs_gateway.stomp")

T = TypeVar("T")
#: ``(request, info) -> user name`` (None refuses the connection); may be async.
Authenticate = Callable[[ConnectRequest, ConnectionInfo | None], str | Awaitable[str | None] | None]
#: ``(user, destination) -> allowed``; may be async.
Authorize = Callable[[str | None, str], bool | Awaitable[bool]]
_TOPIC, _QUEUE, _USER = "/topic/", "/queue/", "/user/queue/"


@dataclass(eq=False, slots=True)
class Subscription:
    """One SUBSCRIBE of one client, with the messages it has not acknowledged yet."""

    client: Client
    id: str
    destination: str
    ack: str
    unacked: dict[str, tuple[str, Payload]] = field(default_factory=dict)
    #: Where a subscription that asked for history stands (admits each message once).
    cursor: Cursor | None = None
    #: Headers for its first MESSAGE (``x-stream-recovered``), until one is sent.
    first_headers: tuple[tuple[str, str], ...] = ()
    #: Live messages held while its history is read from a hub (then replayed).
    pending: list[Entry[Payload]] | None = None

    @property
    def live(self) -> bool:
        """Whether its connection can still receive MESSAGE frames."""
        return self.client.machine.state is ConnectionState.CONNECTED


@dataclass(eq=False, slots=True)
class Client:
    """One STOMP connection as the broker sees it; ``notify`` flushes its machine."""

    machine: StompMachine
    notify: Callable[[], None]
    info: ConnectionInfo | None = None
    user: str | None = None
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    ack_index: dict[str, Subscription] = field(default_factory=dict)  # ack id -> subscription


@dataclass(eq=False, slots=True)
class _Queue:
    pending: deque[Payload] = field(default_factory=deque)
    consumers: list[Subscription] = field(default_factory=list)
    turn: int = 0


def _clip(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


async def _resolve(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


class Broker:
    """Routes STOMP traffic between the connections of one endpoint (or many)."""

    def __init__(
        self,
        options: StompOptions | None = None,
        *,
        authenticate: Authenticate | None = None,
        authorize_subscribe: Authorize | None = None,
        authorize_send: Authorize | None = None,
        history: HistoryLimits | HistoryStore[Payload] | ChannelHub | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, hook in (
            ("authenticate", authenticate),
            ("authorize_subscribe", authorize_subscribe),
            ("authorize_send", authorize_send),
        ):
            if hook is not None:
                params = ("connect", "info") if name == "authenticate" else ("user", "destination")
                check_hook(f"Broker {name}", hook, params)
        self.options = options or StompOptions()
        self.authenticate = authenticate
        self.authorize_subscribe = authorize_subscribe
        self.authorize_send = authorize_send
        #: Where topic messages go; see the module docstring.
        self.topic_relay: Callable[[str, Payload], object] = self.deliver_topic
        #: Where messages for a user go: ``(user, destination, payload) -> local count``.
        self.user_relay: Callable[[str, str, Payload], int] = self.deliver_user
        self._mappings: dict[str, MessageHandler] = {}
        self._clients: dict[Client, None] = {}
        self._subscribers: dict[str, list[Subscription]] = {}  # topics and user queues
        self._queues: dict[str, _Queue] = {}
        self._held = 0  # bytes of payloads waiting in queues or delivered and unacked
        self._ids = itertools.count(1)
        if isinstance(history, HistoryLimits):
            history = HistoryStore(history)
        #: Retained ``/topic/`` messages, if the broker keeps them in this process.
        self.history: HistoryStore[Payload] | None = None
        #: ``/topic/`` traffic through a channel hub (Redis: shared by every node), if the
        #: broker was given one; topic messages then bypass :attr:`topic_relay`.
        self.hub_topics: HubTopics | None = None
        if isinstance(history, HistoryStore):
            self.history = history
        elif history is not None:
            self.hub_topics = HubTopics(self, history)
        self._clock = clock  # Unix seconds, for history ages and ``timestamp=T``

    # -- application API ---------------------------------------------------------------

    def message_mapping(self, destination: str) -> Callable[[MessageHandler], MessageHandler]:
        """Decorator: run the function for every SEND to ``app_prefix + destination``."""
        key = destination.strip("/")
        if not key or key in self._mappings:
            raise ValueError(f"invalid or duplicate mapping {destination!r}")

        def register(handler: MessageHandler) -> MessageHandler:
            check_hook(f"mapping for {destination!r}", handler, ("message",))
            self._mappings[key] = handler
            return handler

        return register

    def publish(self, destination: str, body: str | bytes, headers: Headers = ()) -> None:
        """Send to a ``/topic/`` or ``/queue/`` destination from the server side."""
        payload = Payload.make(body, headers)
        if destination.startswith(_TOPIC):
            self._publish_topic(destination, payload)
        elif destination.startswith(_QUEUE):
            self._enqueue(destination, payload)
        else:
            raise LocalProtocolError(
                f"publish() needs a /topic/ or /queue/ destination, not {destination!r}"
            )

    def send_to_user(
        self, user: str, destination: str, body: str | bytes, headers: Headers = ()
    ) -> int:
        """Send to every session of ``user`` subscribed to ``/user/queue/<name>`` (given as
        that or as ``/queue/<name>``), through :attr:`user_relay`. Returns how many
        subscriptions on this node got it."""
        if destination.startswith(_QUEUE):
            destination = "/user" + destination
        return self.user_relay(user, destination, Payload.make(body, headers))

    def deliver_user(self, user: str, destination: str, payload: Payload) -> int:
        """Give ``payload`` to ``user``'s local subscriptions on ``destination``."""
        subs = [s for s in self._subscribers.get(destination, ()) if s.client.user == user]
        return self._fan_out(subs, destination, payload)

    def send_to_client(
        self, client: Client, destination: str, body: str | bytes, headers: Headers = ()
    ) -> int:
        """Send to ``client``'s own subscriptions on ``destination`` (of any kind).
        Returns how many subscriptions got it."""
        subs = [s for s in client.subscriptions.values() if s.destination == destination]
        return self._fan_out(subs, destination, Payload.make(body, headers))

    def deliver_topic(self, destination: str, payload: Payload) -> int:
        """Give ``payload`` to every local subscriber of topic ``destination`` (with
        history: retain it, and stamp it with its offset and epoch)."""
        subs = list(self._subscribers.get(destination, ()))
        if self.history is None:
            return self._fan_out(subs, destination, payload)
        entry = self.history.append(destination, unstamped(payload), payload.size, self._clock())
        return self._fan_out(subs, destination, stamped(entry), entry)

    def deliver_entry(self, destination: str, payload: Payload, entry: Entry[Payload]) -> int:
        """Give a numbered message from the hub to the local subscribers of ``destination``."""
        return self._fan_out(
            list(self._subscribers.get(destination, ())), destination, payload, entry
        )

    def deliver_to(self, sub: Subscription, payload: Payload) -> None:
        """Give one (replayed) message to one subscription."""
        self._deliver(sub, sub.destination, payload)

    def _publish_topic(self, destination: str, payload: Payload) -> None:
        if self.hub_topics is not None:
            self.hub_topics.publish(destination, payload)
        else:
            self.topic_relay(destination, payload)

    @property
    def clients(self) -> int:
        """Connections currently attached."""
        return len(self._clients)

    @property
    def destinations(self) -> int:
        """Destinations known now (counted against ``max_destinations``)."""
        return len(self._queues) + len(self._subscribers)

    @property
    def queued_bytes(self) -> int:
        """Bytes of messages held now (counted against ``max_queued_bytes``)."""
        return self._held

    # -- connections -------------------------------------------------------------------

    def attach(
        self, machine: StompMachine, notify: Callable[[], None], info: ConnectionInfo | None = None
    ) -> Client:
        """A new connection; ``notify`` is called whenever its machine has output."""
        client = Client(machine, notify, info)
        self._clients[client] = None
        return client

    def detach(self, client: Client) -> None:
        """The connection ended: drop its subscriptions and requeue what it left unacked."""
        if client not in self._clients:
            return
        del self._clients[client]
        for sub in list(client.subscriptions.values()):
            self._drop(sub)

    async def handle(self, client: Client, event: Event) -> None:
        """Handle one event of ``client``'s machine, then RECEIPT or ERROR it."""
        machine = client.machine
        receipt_headers: tuple[tuple[str, str], ...] = ()
        try:
            match event:
                case ConnectRequest():
                    await self._connect(client, event)
                case Subscribe():
                    receipt_headers = await self._subscribe(client, event)
                case Unsubscribe():
                    self._drop(self._subscription(client, event.id))
                case Send():
                    await self._send(client, event)
                case Ack() | Nack():
                    self._ack(client, event)
        except StompError as error:
            machine.fail(event, error)
        except Exception:
            log.exception("STOMP handler failed in session %r", machine.session_id)
            machine.fail(event, StompError("internal server error"))
        else:
            machine.complete(event, receipt_headers)
        if machine.closed:
            self.detach(client)
        client.notify()

    # -- events ------------------------------------------------------------------------

    async def _connect(self, client: Client, event: ConnectRequest) -> None:
        user = None
        if self.authenticate is not None:
            user = await _resolve(self.authenticate(event, client.info))
            if user is None:
                raise NotAuthorized("authentication failed")
        client.user = user
        client.machine.accept(user)

    async def _subscribe(self, client: Client, event: Subscribe) -> tuple[tuple[str, str], ...]:
        destination = event.destination
        start = requested_start(event.frame)
        keeps = self.history is not None or self.hub_topics is not None
        if start is not None and (not keeps or not destination.startswith(_TOPIC)):
            raise StompError(
                "x-stream-offset needs a /topic/ destination of a broker that keeps history"
            )
        if event.id in client.subscriptions:
            raise StompError(f"subscription id {_clip(event.id)!r} is already in use")
        if len(client.subscriptions) >= self.options.max_subscriptions:
            raise LimitExceeded(f"too many subscriptions (limit {self.options.max_subscriptions})")
        if not destination.startswith((_TOPIC, _QUEUE, _USER)):
            raise StompError(
                f"cannot subscribe to {_clip(destination)!r}: use /topic/, /queue/ or /user/queue/"
            )
        await self._authorize(self.authorize_subscribe, client, destination, "subscribe to")
        self._make_room(destination)
        sub = Subscription(client, event.id, destination, event.ack)
        client.subscriptions[event.id] = sub
        if destination.startswith(_QUEUE):
            queue = self._queues.setdefault(destination, _Queue())
            queue.consumers.append(sub)
            self._pump(destination, queue)
        else:
            self._subscribers.setdefault(destination, []).append(sub)
            hub_topics = self.hub_topics
            if hub_topics is not None and destination.startswith(_TOPIC):
                hub_topics.watch(destination)
                if start is not None:
                    return await hub_topics.replay(sub, start)
            if start is not None and self.history is not None:
                # Subscribed first, then replayed: whatever is published meanwhile is
                # admitted once by the cursor, before or after the replay.
                replay = self.history.read(destination, start, self._clock())
                sub.cursor = Cursor(replay.epoch, replay.next_offset)
                sub.first_headers = told = recovery_headers(replay)
                for entry in replay.entries:
                    if sub.live:
                        self._deliver(sub, destination, stamped(entry))
                return told
        return ()

    def _subscription(self, client: Client, sub_id: str) -> Subscription:
        sub = client.subscriptions.get(sub_id)
        if sub is None:
            raise StompError(f"no subscription with id {_clip(sub_id)!r}")
        return sub

    async def _send(self, client: Client, event: Send) -> None:
        destination, frame = event.destination, event.frame
        prefix = self.options.app_prefix
        if not destination.startswith((_TOPIC, _QUEUE, prefix)):
            raise StompError(
                f"cannot send to {_clip(destination)!r}: use /topic/, /queue/ or {prefix}"
            )
        await self._authorize(self.authorize_send, client, destination, "send to")
        payload = Payload(
            tuple((k, v) for k, v in frame.headers if k not in RESERVED_HEADERS), frame.body
        )
        if destination.startswith(_TOPIC):
            self._publish_topic(destination, payload)
        elif destination.startswith(_QUEUE):
            self._enqueue(destination, payload)
        else:
            handler = self._mappings.get(destination[len(prefix) :].strip("/"))
            if handler is None:
                self._unmapped(client, destination)
                return
            message = AppMessage(
                destination,
                payload,
                user=client.user,
                session=client.machine.session_id,
                reply_to="/user/queue/" + destination[len(prefix) :],
                reply=functools.partial(self.send_to_client, client),
                publish=self.publish,
            )
            await _resolve(handler(message))

    def _unmapped(self, client: Client, destination: str) -> None:
        """A SEND to an application destination nobody handles (``unknown_app_destination``)."""
        if self.options.unknown_app_destination == "error":
            raise StompError(
                f"no application handler for {_clip(destination)!r}",
                "No message_mapping handles this destination. The server can be told to"
                ' ignore such SENDs with StompOptions(unknown_app_destination="ignore").',
            )
        refusal(
            "stomp-unmapped",
            "STOMP SEND to %r ignored: no message_mapping handles it (session %s, user %r)",
            _clip(destination),
            client.machine.session_id,
            client.user,
        )

    def _ack(self, client: Client, event: Acknowledgement) -> None:
        sub = client.ack_index.get(event.id)
        if sub is None or event.id not in sub.unacked:
            return  # already acknowledged (cumulatively) or never ours: nothing to do
        if sub.ack == "client":  # cumulative: everything up to and including this one
            ids = [*itertools.takewhile(lambda i: i != event.id, sub.unacked), event.id]
        else:
            ids = [event.id]
        settled = [(i, sub.unacked.pop(i)) for i in ids]
        for ack_id, (_, payload) in settled:
            client.ack_index.pop(ack_id, None)
            self._held -= payload.size
        queue = self._queues.get(sub.destination)
        if queue is not None:
            if isinstance(event, Nack):
                self._requeue(queue, [delivery for _, delivery in settled])
            self._pump(sub.destination, queue)

    async def _authorize(
        self, hook: Authorize | None, client: Client, destination: str, verb: str
    ) -> None:
        if hook is not None and not await _resolve(hook(client.user, destination)):
            raise NotAuthorized(f"not authorized to {verb} {_clip(destination)}")

    # -- delivery ----------------------------------------------------------------------

    def _make_room(self, destination: str) -> None:
        """Raise unless ``destination`` is known or one more fits ``max_destinations``."""
        if destination in self._queues or destination in self._subscribers:
            return
        limit = self.options.max_destinations
        if self.destinations >= limit:
            raise LimitExceeded(f"too many destinations (max_destinations={limit})")

    def _bytes_error(self) -> LimitExceeded:
        limit = self.options.max_queued_bytes
        return LimitExceeded(f"the broker holds too many queued bytes (max_queued_bytes={limit})")

    def _full(self, sub: Subscription) -> bool:
        return sub.ack != "auto" and len(sub.unacked) >= self.options.max_unacked

    def _overflow(self, sub: Subscription, payload: Payload) -> LimitExceeded | None:
        """Why giving ``payload`` to ``sub`` (a topic or user queue) would cross a limit."""
        if sub.ack == "auto":
            return None
        if self._full(sub):
            return LimitExceeded(
                f"too many unacknowledged messages on subscription {_clip(sub.id)!r}"
                f" (limit {self.options.max_unacked})"
            )
        if self._held + payload.size > self.options.max_queued_bytes:
            return self._bytes_error()
        return None

    def _fan_out(
        self,
        subs: list[Subscription],
        destination: str,
        payload: Payload,
        entry: Entry[Payload] | None = None,
    ) -> int:
        count = 0
        for sub in subs:
            if not sub.live:
                continue
            if entry is not None and sub.pending is not None:
                if len(sub.pending) >= self.options.max_unacked:
                    error = LimitExceeded(
                        f"more than {self.options.max_unacked} messages arrived while the"
                        f" history of subscription {_clip(sub.id)!r} was read"
                    )
                    sub.pending = None
                    sub.client.machine.fail_with(error)
                    self.detach(sub.client)
                    sub.client.notify()
                    continue
                sub.pending.append(entry)  # its history is being read: replayed after
                continue
            cursor = sub.cursor
            if entry is not None and cursor is not None:
                if not cursor.admit(entry.epoch, entry.offset):
                    continue
                if cursor.reset:  # the history was lost: this MESSAGE says so
                    sub.first_headers = ((RECOVERED_HEADER, "false"),)
            overflow = self._overflow(sub, payload)
            if overflow is not None:  # a consumer that stopped acking: end it
                sub.client.machine.fail_with(overflow)
                self.detach(sub.client)
                sub.client.notify()
                continue
            self._deliver(sub, destination, payload)
            count += 1
        return count

    def _deliver(self, sub: Subscription, destination: str, payload: Payload) -> None:
        message_id = str(next(self._ids))
        client = sub.client
        ack = None
        if sub.ack != "auto":
            ack = message_id
            sub.unacked[message_id] = (destination, payload)
            client.ack_index[message_id] = sub
            self._held += payload.size
        machine = client.machine
        headers = payload.headers
        if sub.first_headers:
            headers, sub.first_headers = (*headers, *sub.first_headers), ()
        machine.message(sub.id, destination, message_id, headers, payload.body, ack=ack)
        client.notify()

    def _enqueue(self, destination: str, payload: Payload) -> None:
        queue = self._queues.get(destination)
        if queue is None:
            self._make_room(destination)
        elif len(queue.pending) >= self.options.max_queued:
            raise LimitExceeded(
                f"queue {_clip(destination)} is full (limit {self.options.max_queued})"
            )
        size = payload.size
        if self._held + size > self.options.max_queued_bytes:
            raise self._bytes_error()
        if queue is None:
            queue = self._queues[destination] = _Queue()
        queue.pending.append(payload)
        self._held += size
        self._pump(destination, queue)

    def _pump(self, destination: str, queue: _Queue) -> None:
        """Give waiting messages to consumers, round-robin, skipping full ones."""
        while queue.pending and queue.consumers:
            consumers = queue.consumers
            for step in range(len(consumers)):
                index = (queue.turn + step) % len(consumers)
                if consumers[index].live and not self._full(consumers[index]):
                    break
            else:
                return  # every consumer is full: the messages wait
            queue.turn = index + 1
            payload = queue.pending.popleft()
            self._held -= payload.size
            self._deliver(consumers[index], destination, payload)
        if not queue.pending and not queue.consumers:
            del self._queues[destination]

    def _requeue(self, queue: _Queue, deliveries: list[tuple[str, Payload]]) -> None:
        for _, payload in reversed(deliveries):
            headers = tuple(h for h in payload.headers if h[0] != "redelivered")
            again = Payload((*headers, ("redelivered", "true")), payload.body)
            queue.pending.appendleft(again)
            self._held += again.size

    def _drop(self, sub: Subscription) -> None:
        client = sub.client
        client.subscriptions.pop(sub.id, None)
        for ack_id, (_, payload) in sub.unacked.items():
            client.ack_index.pop(ack_id, None)
            self._held -= payload.size
        unacked = list(sub.unacked.values())
        sub.unacked.clear()
        queue = self._queues.get(sub.destination)
        if queue is not None:
            if sub in queue.consumers:
                index = queue.consumers.index(sub)
                queue.consumers.remove(sub)
                if index < queue.turn:
                    queue.turn -= 1
            self._requeue(queue, unacked)  # held again, now waiting in the queue
            self._pump(sub.destination, queue)
        else:
            subs = self._subscribers.get(sub.destination, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._subscribers.pop(sub.destination, None)
                if self.hub_topics is not None:
                    self.hub_topics.unwatch(sub.destination)
