"""Constants and small helpers every test module shares, written once.

Fixtures live in tests/conftest.py; this module holds what tests import by name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["TIMEOUT", "NO_CACHE", "wait_until"]

#: The bound on any one wait in a test: far above what a healthy run needs, so reaching
#: it means a hang, not a slow machine.
TIMEOUT = 5.0

#: The Cache-Control of every SockJS transport response (protocol/replies.py).
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


async def wait_until(predicate: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` until it holds, for at most ``timeout`` seconds.

    For bookkeeping that offers no event to wait on (a session forgotten, a request
    waiting for room); wait on an event instead wherever there is one.
    """
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
