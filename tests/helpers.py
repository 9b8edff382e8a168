"""Constants and small helpers every test module shares, written once.

Fixtures live in tests/conftest.py; this module holds what tests import by name.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, AnyStr

if TYPE_CHECKING:
    from aiohttp import ClientWebSocketResponse

    from sockjs_gateway.server.endpoint import Endpoint
    from sockjs_gateway.server.hooks import SessionRecord
    from sockjs_gateway.server.session import Session

__all__ = [
    "decode_oracle",
    "TIMEOUT",
    "NO_CACHE",
    "wait_until",
    "watch",
    "receive_text",
    "json_between",
    "kept",
    "assert_forgotten",
    "Publisher",
]

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


async def receive_text(ws: ClientWebSocketResponse[Any], timeout: float = TIMEOUT) -> str:
    """The next WebSocket message, which must be a text frame."""
    from aiohttp import WSMsgType

    msg = await ws.receive(timeout=timeout)
    assert msg.type is WSMsgType.TEXT, msg
    data: str = msg.data
    return data


def json_between(wire: AnyStr, head: AnyStr, tail: AnyStr) -> object:
    """The JSON value that ``wire`` wraps: it must start with ``head`` and end with
    ``tail`` (a transport's framing, e.g. a JSONP callback or a ``<script>`` tag)."""
    assert wire.startswith(head), wire
    assert wire.endswith(tail), wire
    return json.loads(wire[len(head) : len(wire) - len(tail)])


async def watch(
    changed: asyncio.Event, predicate: Callable[[], object], timeout: float = TIMEOUT
) -> None:
    """Until ``predicate()`` holds, re-checked each time ``changed`` is set (by whatever
    records something new), for at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            changed.clear()
            await changed.wait()


def kept(endpoint: Endpoint, sessions: Iterable[Session]) -> list[tuple[Session, SessionRecord]]:
    """Each session with what the registry keeps for it (its timer, its hook task),
    taken while every one of them is live, for :func:`assert_forgotten` to check later."""
    pairs = [(session, endpoint.registry.record(session)) for session in sessions]
    assert all(record is not None for _, record in pairs), "a session was forgotten already"
    return [(session, record) for session, record in pairs if record is not None]


def assert_forgotten(endpoint: Endpoint, pairs: list[tuple[Session, SessionRecord]]) -> None:
    """Each session is closed and forgotten, its timer cancelled and its task ended."""
    assert endpoint.session_count == 0
    for session, record in pairs:
        assert session.closed
        assert endpoint.registry.record(session) is None
        assert record.timer is None
        assert record.task is None
        assert session.receiver is None


class Publisher:
    """Publishes "1".."total" to ``channel`` in a task, one every ``interval`` seconds,
    taking turns among ``publish`` (one publishing function per node)."""

    def __init__(
        self,
        publish: Sequence[Callable[[str, str], object]],
        channel: str,
        *,
        total: int,
        interval: float,
    ) -> None:
        self.count = 0
        self.total = total
        self._progress = asyncio.Event()
        self.task = asyncio.create_task(self._run(publish, channel, interval))

    async def _run(
        self, publish: Sequence[Callable[[str, str], object]], channel: str, interval: float
    ) -> None:
        for number in range(1, self.total + 1):
            publish[number % len(publish)](channel, str(number))
            self.count = number
            self._progress.set()
            await asyncio.sleep(interval)

    async def reached(self, count: int) -> None:
        """Until ``count`` messages (or all of them) are out."""
        await watch(self._progress, lambda: self.count >= min(count, self.total))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_oracle(payload: str | bytes, *, allow_single: bool = False) -> list[str] | str:
    """The documented reading of a client's payload, with none of the server's shortcuts:
    plain ``json.loads`` and the checks of ``decode_messages``' docstring. Returns the
    messages, or the text of the 500 answer ("Broken JSON encoding." / "Payload
    expected.")."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            return "Broken JSON encoding."
    if not payload:
        return "Payload expected."
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return "Broken JSON encoding."
    if isinstance(value, str) and allow_single:
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return "Payload expected."
    return [_LONE_SURROGATE.sub("\ufffd", item) for item in value]
