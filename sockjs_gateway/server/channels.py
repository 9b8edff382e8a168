"""Channels for plain SockJS handlers: ``endpoint.publish`` and ``session.subscribe``.

An endpoint's :attr:`~sockjs_gateway.Endpoint.channels` (a :class:`SessionChannels`)
joins the endpoint's sessions to a :class:`~sockjs_gateway.history.Channels` hub: each
message published to a channel is formatted and quoted once, then queued for every
session subscribed to it (``SessionRegistry.multicast``). A session subscribes from a
point (``since``) and gets the retained messages from there, then live ones, each once.

What the client receives is decided by an :class:`Envelope`; the default,
:class:`JsonEnvelope`, sends JSON texts the page can parse::

    {"channel": "news", "subscribed": true, "epoch": "9f1c02ab", "recovered": true}
    {"channel": "news", "epoch": "9f1c02ab", "offset": 12, "data": "the text"}

The first comes once per subscribe, before any replayed message; ``recovered: false``
tells the page that messages it asked for are gone (older than the history, or from
another epoch), so it should resync. The page keeps the last ``epoch`` and ``offset`` it
saw and sends them when it reconnects; the handler passes them back as ``since``.

Subscribing is "listen, then read, then flush": live messages that arrive while the
history is read wait in the subscriber's buffer, and its cursor drops those the replay
already carried. Subscriptions end with ``unsubscribe`` or when the session is forgotten.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Protocol

from ..history import (
    ChannelHub,
    Closable,
    Entry,
    Position,
    Start,
    Subscriber,
    check_channel,
)
from ..logs import refusal
from ..protocol.state import SLOW_CONSUMER
from .session import Recovery, Session, Since

if TYPE_CHECKING:
    from .registry import SessionRegistry

__all__ = [
    "SessionChannels",
    "Recovery",
    "Envelope",
    "JsonEnvelope",
    "Since",
    "MAX_SUBSCRIPTIONS",
    "MAX_PENDING",
]

log = logging.getLogger("sockjs_gateway.history")

#: Channels one session may be subscribed to at once (the default).
MAX_SUBSCRIPTIONS = 100
#: Live messages held for one subscriber while its history is read (the default).
MAX_PENDING = 1000


class Envelope(Protocol):
    """Turns channel traffic into the texts a client receives."""

    def message(self, channel: str, entry: Entry[str]) -> str:
        """One published message (formatted once for all subscribers)."""

    def subscribed(self, recovery: Recovery) -> str | None:
        """Sent to the session before its replay; None sends nothing."""


class JsonEnvelope:
    """The default :class:`Envelope` (see the module docstring)."""

    def message(self, channel: str, entry: Entry[str]) -> str:
        return json.dumps(
            {"channel": channel, "epoch": entry.epoch, "offset": entry.offset, "data": entry.value},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def subscribed(self, recovery: Recovery) -> str | None:
        return json.dumps(
            {
                "channel": recovery.channel,
                "subscribed": True,
                "epoch": recovery.epoch,
                "recovered": recovery.recovered,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )


class _Member(Subscriber[str]):
    __slots__ = ()


class _Group:
    """The sessions of this endpoint subscribed to one channel, and the hub listener."""

    __slots__ = ("name", "members", "handle")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[Session, _Member] = {}
        self.handle: Closable | None = None


class SessionChannels:
    """One endpoint's side of a channel hub (see the module docstring).

    Args:
        registry: the endpoint's sessions.
        hub: the channels and their history; shared with other endpoints and event
            streams if given to them too.
        envelope: what clients receive (:class:`JsonEnvelope` by default).
        max_subscriptions: channels one session may be subscribed to at once.
        max_pending: live messages held for a subscriber while its history is read (a
            round trip with Redis); past it the session is closed as a slow consumer
            (4500), and resumes when it comes back.
    """

    def __init__(
        self,
        registry: SessionRegistry,
        hub: ChannelHub,
        *,
        envelope: Envelope | None = None,
        max_subscriptions: int = MAX_SUBSCRIPTIONS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.registry = registry
        self.hub = hub
        self.envelope: Envelope = envelope or JsonEnvelope()
        self.max_subscriptions = max_subscriptions
        self.max_pending = max_pending
        self._groups: dict[str, _Group] = {}
        self._by_session: dict[Session, set[str]] = {}
        registry.forget_hooks.append(self.forget)

    def publish(self, channel: str, text: str) -> Position | None:
        """Publish ``text`` to ``channel`` (every subscriber of the hub gets it, each once,
        and it is retained); returns its position when known at once (in memory)."""
        entry = self.hub.publish(channel, text)
        return None if entry is None else Position(entry.epoch, entry.offset)

    async def subscribe(self, session: Session, channel: str, since: Since = None) -> Recovery:
        """Send ``session`` the messages of ``channel`` from ``since`` on, then live ones.

        Raises:
            ValueError: a bad channel name or ``since`` text, or the session is subscribed
                to ``max_subscriptions`` channels already.
        """
        check_channel(channel)
        start = Start.of(since)
        names = self._by_session.setdefault(session, set())
        if channel in names:
            self.unsubscribe(session, channel)
        if len(names) >= self.max_subscriptions:
            raise ValueError(f"too many channel subscriptions (limit {self.max_subscriptions})")
        group = self._groups.get(channel)
        if group is None:
            group = self._groups[channel] = _Group(channel)
            group.handle = self.hub.listen(channel, lambda entry: self._deliver(group, entry))
        member = group.members[session] = _Member()
        names.add(channel)
        replay = await self.hub.read(channel, start)
        if group.members.get(session) is not member:  # unsubscribed meanwhile
            return Recovery(channel, replay.epoch, replay.recovered, 0)
        due = member.catch_up(replay, replay.entries)
        recovery = Recovery(channel, replay.epoch, replay.recovered, len(replay.entries))
        status = self.envelope.subscribed(recovery)
        if status is not None:
            session.send(status)
        envelope = self.envelope
        for entry in due:
            session.send(envelope.message(channel, entry))
        return recovery

    def unsubscribe(self, session: Session, channel: str) -> bool:
        """Stop sending ``channel`` to ``session``; False if it was not subscribed."""
        names = self._by_session.get(session)
        if names is None or channel not in names:
            return False
        names.discard(channel)
        if not names:
            del self._by_session[session]
        group = self._groups.get(channel)
        if group is not None:
            group.members.pop(session, None)
            if not group.members:
                del self._groups[channel]
                if group.handle is not None:
                    group.handle.close()
        return True

    def subscriptions(self, session: Session) -> frozenset[str]:
        """The channels ``session`` is subscribed to."""
        return frozenset(self._by_session.get(session, ()))

    def forget(self, session: Session) -> None:
        """End every subscription of ``session`` (the registry calls this)."""
        for channel in list(self._by_session.get(session, ())):
            self.unsubscribe(session, channel)

    def _overflow(self, session: Session, channel: str) -> None:
        """Too many live messages arrived while the history was read: a slow consumer."""
        refusal(
            "channel-pending",
            "Session %r from %s closed with 4500 Slow consumer: more than %d messages of %r"
            " arrived while its history was read",
            session.id,
            session.info.remote,
            self.max_pending,
            channel,
        )
        self.unsubscribe(session, channel)
        session.close(SLOW_CONSUMER.code, SLOW_CONSUMER.reason)

    def _deliver(self, group: _Group, entry: Entry[str]) -> None:
        targets = []
        for session, member in list(group.members.items()):
            if member.pending is not None:
                if len(member.pending) >= self.max_pending:
                    self._overflow(session, group.name)
                    continue
                member.pending.append(entry)
            elif member.cursor.admit(entry.epoch, entry.offset):
                if member.cursor.reset:  # the history was lost: say so first
                    status = self.envelope.subscribed(Recovery(group.name, entry.epoch, False, 0))
                    if status is not None:
                        session.send(status)
                targets.append(session)
        if targets:
            self.registry.multicast(targets, self.envelope.message(group.name, entry))
