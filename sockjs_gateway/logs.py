"""One log line per refusal, rate-limited per kind, on the ``sockjs_gateway`` logger.

An operator needs to see why a client was turned away (an origin not allowed, a Host
refused, a STOMP SEND nobody handles), but a hostile client can be refused thousands of
times a second, and every line would go to disk. So each *kind* of refusal logs at most one
line per :data:`INTERVAL` seconds; the next line that gets through says how many were held
back in between. Kinds are short fixed strings chosen by the caller (``"origin"``,
``"host"``), never client data, so the table of kinds stays small. The helpers at the end
write the lines whose wording several modules share (slow consumers, WebSocket protocol
closes), so that those modules each need one call.

This is a leaf module: it imports nothing from the package, so any layer may use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "RefusalLog",
    "refusal",
    "INTERVAL",
    "logger",
    "slow_consumer_dropped",
    "slow_consumer_closed",
    "protocol_close",
]

#: The logger every refusal goes to.
logger = logging.getLogger("sockjs_gateway")
#: Seconds between two lines of the same kind.
INTERVAL = 10.0


class RefusalLog:
    """Logs refusals (at WARNING unless told otherwise), at most one line per kind per
    ``interval`` seconds."""

    __slots__ = ("interval", "_clock", "_next", "_held")

    def __init__(
        self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}  # kind -> when its next line may go out
        self._held: dict[str, int] = {}  # kind -> lines held back since the last one

    def __call__(
        self, kind: str, message: str, *args: object, level: int = logging.WARNING
    ) -> bool:
        """Log ``message % args`` at ``level`` unless a line of ``kind`` went out less than
        ``interval`` seconds ago. Returns whether a line was written."""
        if not logger.isEnabledFor(level):
            return False
        now = self._clock()
        if now < self._next.get(kind, -float("inf")):
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._next[kind] = now + self.interval
        held = self._held.pop(kind, 0)
        if held:
            message += " (%d more %s refusals not logged)"
            args = (*args, held, kind)
        logger.log(level, message, *args)
        return True

    def reset(self) -> None:
        """Forget what was logged, so the next refusal of every kind is logged (tests)."""
        self._next.clear()
        self._held.clear()


#: The process-wide refusal log (a log, like the logger it writes to, is process-wide).
refusal = RefusalLog()


class _Info(Protocol):
    @property
    def remote(self) -> str | None: ...


class _Session(Protocol):
    """What a log line needs of a session (structural: this module imports nothing)."""

    @property
    def id(self) -> str: ...

    @property
    def info(self) -> _Info: ...


def slow_consumer_dropped(session: _Session, dropped: int, queued_bytes: int) -> None:
    """A drop policy (or a 4500 close) threw away messages queued for a slow client."""
    refusal(
        "slow-consumer",
        "Session %r from %s: %d queued messages dropped (slow consumer), %d bytes still queued",
        session.id,
        session.info.remote,
        dropped,
        queued_bytes,
    )


def slow_consumer_closed(session: _Session, *, stalled: bool) -> None:
    """The slow-consumer policy closed a session with 4500 "Slow consumer"."""
    why = "a write stuck past send_time_limit" if stalled else "its queue was full"
    refusal(
        "slow-consumer",
        "Session %r from %s closed with 4500 Slow consumer: %s",
        session.id,
        session.info.remote,
        why,
    )


def protocol_close(session: _Session, code: int, reason: str) -> None:
    """A WebSocket client broke the rules (1007 bad frame, 1009 too big, 1003 binary, 1002)
    and its connection is closed with ``code``."""
    refusal(
        "websocket",
        "Session %r from %s closed with %d: %.200s",
        session.id,
        session.info.remote,
        code,
        reason,
    )
