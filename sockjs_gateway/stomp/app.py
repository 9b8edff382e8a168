"""``StompHandler``: STOMP over SockJS as just another :class:`~sockjs_gateway.Handler`.

Each SockJS message is fed to the session's :class:`StompMachine`; each frame the machine
produces becomes one SockJS message (stompjs reads either way). The glue is this file's
only job: one ``loop.call_at`` handle per connection at ``machine.next_deadline()`` (moved
only earlier, re-armed when it fires, cancelled on close), and a flush after every change
that sends the machine's output and closes the session once the machine has closed.
"""

from __future__ import annotations

import asyncio
import secrets

from ..logs import refusal
from ..server.registry import rearm
from ..server.session import Session
from .broker import Broker, Client
from .protocol import StompMachine

__all__ = ["StompHandler", "ERROR_CLOSE", "DISCONNECT_CLOSE"]

#: SockJS close code and reason after an ERROR frame (its ``message`` says why).
ERROR_CLOSE = (1002, "STOMP error")
#: SockJS close code and reason after the client's DISCONNECT was receipted.
DISCONNECT_CLOSE = (1000, "STOMP disconnect")


class _Connection:
    """One session's machine, broker client and timer."""

    __slots__ = (
        "session",
        "broker",
        "machine",
        "client",
        "loop",
        "_timer",
        "_closing",
    )

    def __init__(self, session: Session, broker: Broker, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self.broker = broker
        self.loop = loop
        self.machine = StompMachine(loop.time(), secrets.token_urlsafe(12), broker.options)
        self.client: Client = broker.attach(self.machine, self.flush, session.info)
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False

    def flush(self) -> None:
        """Send what the machine has for the client; close the session if it is done."""
        machine = self.machine
        for text in machine.data_to_send(self.loop.time()):
            self.session.send(text)
        if machine.closed:
            if not self._closing:
                self._closing = True
                self.cancel()
                self.broker.detach(self.client)  # requeue its unacked messages now
                code, reason = DISCONNECT_CLOSE if machine.error_message is None else ERROR_CLOSE
                if machine.error_message is not None:
                    refusal(
                        "stomp-error",
                        "STOMP session %s (%s) ended with ERROR: %s",
                        machine.session_id,
                        self.session.info.remote,
                        machine.error_message,
                    )
                self.session.close(code, reason)
            return
        self._arm()

    def _arm(self) -> None:
        self._timer = rearm(self.loop, self._timer, self.machine.next_deadline(), self._fired)

    def _fired(self) -> None:
        self._timer = None
        self.machine.timer_fired(self.loop.time())
        self.flush()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class StompHandler:
    """Serves STOMP 1.0-1.2 on every session of a SockJS endpoint.

    Args:
        broker: the :class:`Broker` to route through; endpoints may share one.
    """

    def __init__(self, broker: Broker | None = None) -> None:
        self.broker = broker or Broker()
        self._connections: dict[Session, _Connection] = {}

    async def on_open(self, session: Session) -> None:
        connection = _Connection(session, self.broker, asyncio.get_running_loop())
        self._connections[session] = connection
        connection.flush()

    async def on_message(self, session: Session, message: str) -> None:
        connection = self._connections.get(session)
        if connection is None:
            return
        machine = connection.machine
        machine.receive_data(message, connection.loop.time())
        for event in machine.events_received():
            await self.broker.handle(connection.client, event)
        connection.flush()

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        connection = self._connections.pop(session, None)
        if connection is not None:
            connection.cancel()
            self.broker.detach(connection.client)

    @property
    def connections(self) -> int:
        """Sessions currently served."""
        return len(self._connections)
