"""aio-libs' ``Session`` and ``SessionManager``, as views over sockjs_gateway sessions.

The gateway owns every session (:class:`sockjs_gateway.Session`); this module keeps one
aio-libs-shaped :class:`Session` per gateway session, and :class:`Bridge`, a gateway
:class:`~sockjs_gateway.Handler`, turns ``on_open``/``on_message``/``on_close`` into the
``handler(manager, session, msg)`` calls aio-libs makes. Nothing here touches transports,
timers or queues: heartbeats, expiry, limits and broadcast encoding stay the gateway's.

Why the ``CLOSE``/``CLOSED`` split looks the way it does: aio-libs sends ``CLOSE`` only
when the client side ended the session (a client close, a lost connection, a timeout) and
then ``CLOSED``; when the application closed it, only ``CLOSED``. We keep that contract, but
deliver ``CLOSED`` at once instead of at aio-libs' next garbage-collection sweep.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..info import ConnectionInfo
from ..protocol.frames import decode_messages
from ..protocol.state import INTERRUPTED
from ..protocol.state import SessionState as GatewayState
from ..server.registry import GOING_AWAY, HANDLER_ERROR
from ..server.session import Session as GatewaySession
from ._aio_types import (
    CLOSED_MESSAGE,
    OPEN_MESSAGE,
    MsgType,
    SessionInterrupted,
    SessionState,
    SockjsMessage,
)

if TYPE_CHECKING:
    from aiohttp import web
    from multidict import CIMultiDictProxy, MultiMapping

    from ..server.endpoint import Endpoint

__all__ = ["Session", "SessionManager", "HandlerType", "OpeningRequest", "Bridge"]


#: ``handler(manager, session, msg)``, a coroutine function or a plain function.
HandlerType = Callable[["SessionManager", "Session", SockjsMessage], Any]

_T = TypeVar("_T")
_MISSING: Any = object()
# Closes the server decided on its own (not the application, not the client).
_SERVER_CLOSES = frozenset({GOING_AWAY, HANDLER_ERROR})


def _clean(code: int) -> bool:
    """Whether a close code means an orderly end rather than a broken connection."""
    return code in (1000, 1001, 1005) or 3000 <= code <= 4999


@dataclass(frozen=True, slots=True)
class OpeningRequest:
    """What ``session.request`` gives: the request that opened the session, frozen.

    aio-libs hands out the live request of whichever transport is attached (None between
    polls). A snapshot of the opening request is what auth code actually needs, and it
    never turns None mid-session. The attribute names are ``web.Request``'s.
    """

    info: ConnectionInfo
    app: web.Application

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The opening request's headers."""
        return self.info.headers

    @property
    def cookies(self) -> Mapping[str, str]:
        """The opening request's cookies."""
        return self.info.cookies

    @property
    def query(self) -> MultiMapping[str]:
        """The opening request's query parameters."""
        return self.info.query

    @property
    def path(self) -> str:
        """The opening request's path."""
        return self.info.path

    @property
    def remote(self) -> str | None:
        """The peer address as aiohttp reported it."""
        return self.info.remote

    @property
    def transport(self) -> str:
        """The transport that opened the session, e.g. ``"xhr-streaming"``."""
        return self.info.transport


class Session:
    """aio-libs' ``Session`` API over one gateway session.

    Attributes:
        id: the session id; unique within the manager (a WebSocket id already in use gets
            a ``-xxxxxxxx`` suffix and a raw WebSocket a random number, as in aio-libs).
        manager: the :class:`SessionManager` (aio-libs before 0.12 had it too).
        gateway: the underlying :class:`sockjs_gateway.Session`, for code moving on.
    """

    __slots__ = ("id", "manager", "gateway", "_app_closed", "_finished")

    def __init__(self, session_id: str, manager: SessionManager, gateway: GatewaySession):
        self.id = session_id
        self.manager = manager
        self.gateway = gateway
        self._app_closed = False
        self._finished = False

    @property
    def state(self) -> SessionState:
        """``NEW``, ``OPEN``, ``CLOSING`` (closed, ``CLOSED`` not yet handled), ``CLOSED``."""
        state = self.gateway.state
        if state is GatewayState.NEW:
            return SessionState.NEW
        if state is GatewayState.OPEN:
            return SessionState.OPEN
        return SessionState.CLOSED if self._finished else SessionState.CLOSING

    @property
    def request(self) -> OpeningRequest:
        """The request that opened the session (see :class:`OpeningRequest`)."""
        return OpeningRequest(self.gateway.info, self.manager.app)

    @property
    def acquired(self) -> bool:
        """True while a connection is carrying frames to the client."""
        return self.gateway.receiver is not None

    @property
    def interrupted(self) -> bool:
        """True if the session closed because its connection was lost."""
        return self.gateway.machine.closed_with == INTERRUPTED

    def send(self, msg: str) -> bool:
        """Queue ``msg`` for the client; False if the session is not open."""
        if not isinstance(msg, str):
            raise TypeError("String is required")
        return self.gateway.send(msg)

    def send_frame(self, frm: str) -> None:
        """Send an encoded ``a[...]`` frame (as ``broadcast`` prepared them in aio-libs);
        its messages are queued one by one, so they are encoded for each transport."""
        if not frm.startswith("a"):
            raise ValueError("send_frame takes an encoded message frame: a[...]")
        for message in decode_messages(frm[1:]):
            self.gateway.send(message)

    def close(self, code: int = 3000, reason: str = "Go away!") -> None:
        """Close the session; the client gets queued messages, then ``c[code,reason]``."""
        self._app_closed = True
        self.gateway.close(code, reason)

    def __repr__(self) -> str:
        return f"<aiosockjs.Session {self.id!r} {self.state.name}>"


class SessionManager:
    """aio-libs' ``SessionManager``: the sessions of one endpoint and ``broadcast``.

    Made by ``add_endpoint`` unless one is passed in; its ``handler`` (not the one given
    to ``add_endpoint``) is what runs, as in aio-libs, so a subclass may wrap it.
    """

    def __init__(
        self,
        name: str,
        app: web.Application,
        handler: HandlerType,
        heartbeat_delay: float = 25,
        disconnect_delay: float = 5,
        debug: bool = False,
    ) -> None:
        self.name = name
        self.app = app
        self.handler = handler
        self.heartbeat_delay = heartbeat_delay
        self.disconnect_delay = disconnect_delay
        self.debug = debug
        #: Session id to :class:`Session`, for open sessions and those being closed.
        self.sessions: dict[str, Session] = {}
        #: The gateway endpoint, once ``add_endpoint`` has mounted this manager.
        self.endpoint: Endpoint | None = None
        self._views: dict[GatewaySession, Session] = {}

    @property
    def started(self) -> bool:
        """True once mounted: the gateway runs sessions without a manager task."""
        return self.endpoint is not None

    def start(self) -> None:
        """Nothing to start (aio-libs started its garbage-collection task here)."""

    async def stop(self, _app: object = None) -> None:
        """Close every session with 1001 "Going away" (clients get the close frame)."""
        await self.clear()

    async def clear(self) -> None:
        """Close every session with 1001 "Going away"."""
        for session in list(self.sessions.values()):
            session.gateway.close(*GOING_AWAY)

    def get(self, session_id: str, create: bool = False, default: _T = _MISSING) -> Session | _T:
        """The session with this id; ``default``, or KeyError, if there is none.

        Raises:
            ValueError: ``create=True``: sessions are created by their clients' requests.
        """
        if create:
            raise ValueError("sessions are created by client requests, not by get()")
        session = self.sessions.get(session_id)
        if session is not None:
            return session
        if default is _MISSING:
            raise KeyError(session_id)
        return default

    def active_sessions(self) -> Iterator[Session]:
        """The open sessions, from a snapshot (safe while sessions come and go)."""
        for session in list(self.sessions.values()):
            if session.state is SessionState.OPEN:
                yield session

    def broadcast(self, message: str, exclude_session_ids: set[str] | None = None) -> None:
        """Send ``message`` to every open session but the excluded ones.

        Without exclusions this is the endpoint's broadcast: encoded once, right for every
        transport (raw WebSocket included), and across nodes with a backplane. Exclusions
        are applied on this node only.
        """
        if not exclude_session_ids and self.endpoint is not None:
            self.endpoint.broadcast(message)
            return
        excluded = exclude_session_ids or set()
        for session in self.active_sessions():
            if session.id not in excluded:
                session.send(message)

    # -- used by Bridge ----------------------------------------------------------------

    def view(self, gateway: GatewaySession) -> Session:
        """The :class:`Session` for a gateway session, made on first sight."""
        session = self._views.get(gateway)
        if session is None:
            session = Session(self._unique_id(gateway.id), self, gateway)
            self._views[gateway] = session
            self.sessions[session.id] = session
        return session

    def forget(self, session: Session) -> None:
        """Drop a session whose ``CLOSED`` message has been handled."""
        self._views.pop(session.gateway, None)
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]

    def _unique_id(self, wanted: str) -> str:
        if not wanted:  # a raw WebSocket has no id of its own
            wanted = f"{secrets.randbelow(2**31):09d}"
        session_id = wanted
        while session_id in self.sessions:
            session_id = f"{wanted}-{secrets.token_hex(4)}"
        return session_id

    async def dispatch(self, session: Session, msg: SockjsMessage) -> None:
        """Call the handler, awaiting it if it is a coroutine function."""
        result = self.handler(self, session, msg)
        if inspect.isawaitable(result):
            await result


class Bridge:
    """The gateway :class:`~sockjs_gateway.Handler` that runs an aio-libs handler.

    A handler error is left to the gateway, which logs it and closes the session with
    1011 (aio-libs logged it and carried on).
    """

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    async def on_open(self, session: GatewaySession) -> None:
        await self.manager.dispatch(self.manager.view(session), OPEN_MESSAGE)

    async def on_message(self, session: GatewaySession, message: str) -> None:
        manager = self.manager
        await manager.dispatch(manager.view(session), SockjsMessage(MsgType.MESSAGE, message))

    async def on_close(self, session: GatewaySession, code: int, reason: str) -> None:
        manager = self.manager
        view = manager.view(session)
        try:
            if not view._app_closed and (code, reason) not in _SERVER_CLOSES:
                data = None if _clean(code) else SessionInterrupted(code, reason)
                await manager.dispatch(view, SockjsMessage(MsgType.CLOSE, data))
        finally:
            view._finished = True
            try:
                await manager.dispatch(view, CLOSED_MESSAGE)
            finally:
                manager.forget(view)
