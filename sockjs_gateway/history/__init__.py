"""Channels with bounded history: offsets, epochs, and recovery after a reconnect.

* :mod:`.positions`: offsets, epochs and starting points (``x-stream-offset``,
  ``Last-Event-ID``), pure values;
* :mod:`.store`: :class:`HistoryStore`, the bounded in-memory history (sans-I/O);
* :mod:`.hub`: :class:`Channels`, publish and listen on named channels with history.

The SockJS side (``endpoint.publish``, ``session.subscribe``) is in
:mod:`sockjs_gateway.server.channels`, the EventSource endpoint in
:mod:`sockjs_gateway.server.eventstream`, STOMP ``x-stream-offset`` in the broker.
Importing this package loads neither asyncio nor aiohttp.
"""

from __future__ import annotations

from .hub import (
    CHANNEL_NAME_LIMIT,
    ChannelHub,
    Channels,
    Closable,
    Listener,
    Subscriber,
    catch_up,
    check_channel,
)
from .positions import Cursor, Mode, Position, Start, parse_event_id, parse_stream_offset
from .store import Entry, HistoryLimits, HistoryStats, HistoryStore, Replay

__all__ = [
    "Channels",
    "ChannelHub",
    "Closable",
    "Listener",
    "Subscriber",
    "catch_up",
    "CHANNEL_NAME_LIMIT",
    "check_channel",
    "Cursor",
    "Mode",
    "Position",
    "Start",
    "parse_event_id",
    "parse_stream_offset",
    "Entry",
    "HistoryLimits",
    "HistoryStats",
    "HistoryStore",
    "Replay",
]
