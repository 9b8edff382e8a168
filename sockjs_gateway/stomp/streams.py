"""STOMP ``/topic/`` recovery, following RabbitMQ streams' ``x-stream-offset`` convention.

A broker made with history (``Broker(history=HistoryLimits(...))``) numbers every message
of every ``/topic/`` destination, keeps the recent ones, and stamps each MESSAGE with

* ``x-stream-offset``: the message's offset in its destination (1, 2, 3, …), and
* ``x-stream-epoch``: the epoch those offsets belong to (it changes when history is lost).

A SUBSCRIBE may then carry ``x-stream-offset``: ``first``, ``last``, ``next``, ``offset=N``
(N inclusive: resume with the last offset seen plus one) or ``timestamp=T`` (Unix
seconds), and ``x-stream-epoch``, the epoch of that offset. The broker replays what it
retained from there, then goes on live, each message once. The first MESSAGE of such a
subscription, and its RECEIPT if one was asked for, carry ``x-stream-recovered``:
``true``, or ``false`` when messages asked for are gone (older than the history, or from
another epoch); the replay is then everything retained, and the application should resync.

A client cannot forge these headers: ``x-stream-*`` headers of a SEND are removed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..history import (
    ChannelHub,
    Closable,
    Cursor,
    Entry,
    Replay,
    Start,
    catch_up,
    parse_stream_offset,
)
from .errors import StompError
from .frames import Frame
from .messages import Payload

if TYPE_CHECKING:
    from .broker import Broker, Subscription

__all__ = [
    "OFFSET_HEADER",
    "EPOCH_HEADER",
    "RECOVERED_HEADER",
    "requested_start",
    "stamped",
    "unstamped",
    "recovery_headers",
    "HubTopics",
]

OFFSET_HEADER = "x-stream-offset"
EPOCH_HEADER = "x-stream-epoch"
RECOVERED_HEADER = "x-stream-recovered"
_PREFIX = "x-stream-"


def requested_start(frame: Frame) -> Start | None:
    """The starting point a SUBSCRIBE asks for, or None for a plain subscription.

    Raises:
        StompError: the header is not one of the accepted forms.
    """
    text = frame.get(OFFSET_HEADER)
    if text is None:
        return None
    try:
        return parse_stream_offset(text, frame.get(EPOCH_HEADER))
    except ValueError as error:
        raise StompError(str(error)) from None


def unstamped(payload: Payload) -> Payload:
    """``payload`` without any ``x-stream-*`` header (a SEND cannot forge positions)."""
    headers = payload.headers
    if not any(name.startswith(_PREFIX) for name, _ in headers):
        return payload
    return Payload(tuple(h for h in headers if not h[0].startswith(_PREFIX)), payload.body)


def stamped(entry: Entry[Payload]) -> Payload:
    """The retained payload with its offset and epoch headers."""
    payload = entry.value
    headers = (*payload.headers, (OFFSET_HEADER, str(entry.offset)), (EPOCH_HEADER, entry.epoch))
    return Payload(headers, payload.body)


def recovery_headers(replay: Replay[Any]) -> tuple[tuple[str, str], ...]:
    """What the first MESSAGE and the RECEIPT of a recovering subscription say."""
    headers = [(RECOVERED_HEADER, "true" if replay.recovered else "false")]
    if replay.epoch is not None:
        headers.append((EPOCH_HEADER, replay.epoch))
    return tuple(headers)


def _encode(payload: Payload) -> str:
    return json.dumps(payload.headers, separators=(",", ":")) + "\n" + payload.body.decode()


def _decode(entry: Entry[str]) -> Entry[Payload]:
    head, _, body = entry.value.partition("\n")
    headers = tuple((str(k), str(v)) for k, v in json.loads(head))
    payload = Payload(headers, body.encode())
    return Entry(entry.epoch, entry.offset, entry.time, payload, entry.size)


class HubTopics:
    """A broker's ``/topic/`` traffic through a channel hub (``Broker(history=hub)``),
    such as :class:`sockjs_gateway.backplane.history.RedisChannels`: the hub numbers and
    keeps every message and hands it to every node, so a client can resume on any node.

    The broker listens to a destination while it has subscribers here. A subscription
    with a starting point buffers the live messages that arrive while the hub reads the
    history (a round trip to Redis), then replays and flushes them through its cursor.
    """

    def __init__(self, broker: Broker, hub: ChannelHub) -> None:
        self.broker = broker
        self.hub = hub
        self._handles: dict[str, Closable] = {}

    def publish(self, destination: str, payload: Payload) -> None:
        self.hub.publish(destination, _encode(unstamped(payload)))

    def watch(self, destination: str) -> None:
        if destination not in self._handles:
            self._handles[destination] = self.hub.listen(
                destination, lambda entry: self._received(destination, entry)
            )

    def unwatch(self, destination: str) -> None:
        handle = self._handles.pop(destination, None)
        if handle is not None:
            handle.close()

    def _received(self, destination: str, entry: Entry[str]) -> None:
        decoded = _decode(entry)
        self.broker.deliver_entry(destination, stamped(decoded), decoded)

    async def replay(self, sub: Subscription, start: Start) -> tuple[tuple[str, str], ...]:
        """Replay ``sub``'s history from ``start``; returns the RECEIPT's headers."""
        sub.pending = []
        sub.cursor = Cursor(None, 0)
        try:
            replay = await self.hub.read(sub.destination, start)
        except Exception:
            sub.pending = None
            raise StompError("the channel history cannot be read now; try again") from None
        entries = [_decode(entry) for entry in replay.entries]
        sub.cursor, due = catch_up(replay, entries, sub.pending)
        sub.pending = None
        sub.first_headers = told = recovery_headers(replay)
        for entry in due:
            if sub.live:
                self.broker.deliver_to(sub, stamped(entry))
        return told
