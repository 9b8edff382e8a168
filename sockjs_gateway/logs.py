"""One log line per refusal, rate-limited per kind, on the ``sockjs_gateway`` logger.

An operator needs to see why a client was turned away (an origin not allowed, a Host
refused, a STOMP SEND nobody handles), but a hostile client can be refused thousands of
times a second, and every line would go to disk. So each *kind* of refusal logs at most one
line per :data:`INTERVAL` seconds; the next line that gets through says how many were held
back in between. Kinds are short fixed strings chosen by the caller (``"origin"``,
``"host"``), never client data, so the table of kinds stays small.

This is a leaf module: it imports nothing from the package, so any layer may use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RefusalLog", "refusal", "INTERVAL", "logger"]

#: The logger every refusal goes to.
logger = logging.getLogger("sockjs_gateway")
#: Seconds between two lines of the same kind.
INTERVAL = 10.0


class RefusalLog:
    """Logs refusals at WARNING, at most one line per kind per ``interval`` seconds."""

    __slots__ = ("interval", "_clock", "_next", "_held")

    def __init__(
        self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}  # kind -> when its next line may go out
        self._held: dict[str, int] = {}  # kind -> lines held back since the last one

    def __call__(self, kind: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless a line of ``kind`` went out less than
        ``interval`` seconds ago. Returns whether a line was written."""
        now = self._clock()
        if now < self._next.get(kind, -float("inf")):
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._next[kind] = now + self.interval
        held = self._held.pop(kind, 0)
        if held:
            message += " (%d more %s refusals not logged)"
            args = (*args, held, kind)
        logger.warning(message, *args)
        return True

    def reset(self) -> None:
        """Forget what was logged, so the next refusal of every kind is logged (tests)."""
        self._next.clear()
        self._held.clear()


#: The process-wide refusal log (a log, like the logger it writes to, is process-wide).
refusal = RefusalLog()
