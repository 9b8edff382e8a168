"""A registry with no sockets: the unit seam of the adapter ring.

In the spirit of h11's ``ConnectionPair``: :class:`Harness` holds one
:class:`~sockjs_gateway.server.registry.SessionRegistry` on the running event loop (its
timers are real ``loop.call_at`` handles) and a :class:`FakeReceiver` stands where an HTTP
response or a WebSocket would, recording what the registry asks of it. Timers, 2010, close
replay, backpressure and slow consumers are then tested without a server, a port or a
client, and each test reads like the protocol it checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict

from sockjs_gateway.info import ConnectionInfo
from sockjs_gateway.options import SockJSOptions
from sockjs_gateway.protocol.state import Attach
from sockjs_gateway.server.registry import SessionRegistry
from sockjs_gateway.server.session import Session
from tests.conftest import RecordingHandler
from tests.helpers import TIMEOUT, watch

if TYPE_CHECKING:
    from sockjs_gateway.server.endpoint import Endpoint

__all__ = ["FakeReceiver", "Harness"]


class FakeReceiver:
    """What an attached transport does, minus the socket: it records wakes, aborts and
    frames the registry writes straight to it, and takes frames when told to.

    Args:
        direct: whether it takes ready-made WebSocket frames (a WebSocket does; HTTP
            receivers do not).
    """

    def __init__(self, registry: SessionRegistry, session: Session, *, direct: bool) -> None:
        self.registry = registry
        self.session = session
        self.direct = direct
        self.reading = True  # False: write_direct refuses, as a paused WebSocket does
        self.wakes = 0
        self.aborted = False
        self.written: list[bytes] = []
        self._changed = asyncio.Event()

    def wake(self) -> None:
        self.wakes += 1
        self._changed.set()

    def abort(self) -> None:
        self.aborted = True
        self._changed.set()

    async def until(self, condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
        """Wait until ``condition()`` holds, re-checking after each wake or abort."""

        await watch(self._changed, condition, timeout)

    def write_direct(self, frame: bytes) -> bool:
        if not (self.direct and self.reading):
            return False
        self.written.append(frame)
        return True

    @property
    def frames_direct(self) -> bool:
        return self.direct

    def take(self) -> list[str]:
        """The frames a transport would write now."""
        loop = asyncio.get_running_loop()
        return self.session.machine.data_to_send(loop.time())


@dataclasses.dataclass
class Harness:
    """One registry and its handler; :meth:`open` makes sessions with fake receivers."""

    options: SockJSOptions
    handler: RecordingHandler
    registry: SessionRegistry

    @classmethod
    def make(cls, handler: RecordingHandler | None = None, **options: Any) -> Harness:
        handler = handler or RecordingHandler()
        opts = SockJSOptions(**options)
        # The registry hands its endpoint to each Session and never calls it.
        endpoint = cast("Endpoint", None)
        return cls(opts, handler, SessionRegistry(endpoint, handler, opts))

    def create(self, session_id: str = "s1", *, websocket: bool = False) -> Session:
        info = ConnectionInfo(
            remote="127.0.0.1",
            headers=CIMultiDictProxy(CIMultiDict()),
            cookies={},
            query=MultiDict(),
            path="/",
            transport="websocket" if websocket else "xhr_streaming",
        )
        return self.registry.create(session_id, info, websocket=websocket)

    def attach(self, session: Session, *, direct: bool = False) -> FakeReceiver:
        """Attach a new fake receiver to ``session``; it must be accepted."""
        receiver = FakeReceiver(self.registry, session, direct=direct)
        assert self.registry.attach(session, receiver) is Attach.OK
        return receiver

    async def open(
        self, session_id: str = "s1", *, direct: bool = False
    ) -> tuple[Session, FakeReceiver]:
        """A session opened by a receiver, whose ``o`` frame was taken and whose
        ``on_open`` has run."""
        session = self.create(session_id, websocket=direct)
        receiver = self.attach(session, direct=direct)
        assert receiver.take() == ["o"]
        await self.handler.wait_for("open")
        return session, receiver
