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

from ..history import Entry, Replay, Start, parse_stream_offset
from .errors import StompError
from .frames import Frame
from .messages import Payload

__all__ = [
    "OFFSET_HEADER",
    "EPOCH_HEADER",
    "RECOVERED_HEADER",
    "requested_start",
    "stamped",
    "unstamped",
    "recovery_headers",
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


def recovery_headers(replay: Replay[Payload]) -> tuple[tuple[str, str], ...]:
    """What the first MESSAGE and the RECEIPT of a recovering subscription say."""
    headers = [(RECOVERED_HEADER, "true" if replay.recovered else "false")]
    if replay.epoch is not None:
        headers.append((EPOCH_HEADER, replay.epoch))
    return tuple(headers)
