"""aio-libs ``sockjs`` 0.13, served by sockjs_gateway: change the import, keep the handler.

::

    import sockjs                                             # before
    from sockjs_gateway.compat import aiosockjs as sockjs     # after

    async def chat(manager, session, msg):
        if msg.type == sockjs.MsgType.OPEN:
            manager.broadcast("Someone joined.")
        elif msg.type == sockjs.MsgType.MESSAGE:
            manager.broadcast(msg.data)
        elif msg.type == sockjs.MsgType.CLOSED:
            manager.broadcast("Someone left.")

    sockjs.add_endpoint(app, chat, name="chat", prefix="/sockjs")

The endpoint is a normal sockjs_gateway endpoint (same transports, limits, origin policy
and shutdown), driven through an adapter handler; ``docs/migration.md`` lists where the
behaviour differs from aio-libs and why.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ..backplane.base import Backplane
from ..handler import check_hook
from ..options import DEFAULT_SOCKJS_URL, SockJSOptions
from ..server.endpoint import add_endpoint as add_gateway_endpoint
from ._aio_session import Bridge, HandlerType, OpeningRequest, Session, SessionManager
from ._aio_types import (
    MSG_CLOSE,
    MSG_CLOSED,
    MSG_MESSAGE,
    MSG_OPEN,
    Frame,
    MsgType,
    SessionInterrupted,
    SessionIsAcquired,
    SessionIsClosed,
    SessionState,
    SockjsException,
    SockjsMessage,
)

__all__ = [
    "add_endpoint",
    "get_manager",
    "Session",
    "SessionManager",
    "SessionIsClosed",
    "SessionIsAcquired",
    "SessionState",
    "MsgType",
    "Frame",
    "SockjsMessage",
    "SockjsException",
    "SessionInterrupted",
    "OpeningRequest",
    "HandlerType",
    "MANAGERS",
    "MSG_OPEN",
    "MSG_MESSAGE",
    "MSG_CLOSE",
    "MSG_CLOSED",
]

#: Every manager mounted on an app, by endpoint name (what ``get_manager`` reads).
MANAGERS = web.AppKey("sockjs_gateway.compat.aiosockjs.managers", dict[str, SessionManager])

# aio-libs calls the raw WebSocket route "websocket-raw"; the gateway "raw-websocket".
_TRANSPORT_NAMES = {"websocket-raw": "raw-websocket"}


def get_manager(name: str, app: web.Application) -> SessionManager:
    """The manager of the endpoint called ``name`` on ``app``.

    Raises:
        KeyError: no endpoint of that name was added.
    """
    return app[MANAGERS][name]


def add_endpoint(
    app: web.Application,
    handler: HandlerType,
    *,
    name: str = "",
    prefix: str = "/sockjs",
    manager: SessionManager | None = None,
    disable_transports: Iterable[str] = (),
    sockjs_cdn: str = DEFAULT_SOCKJS_URL,
    cookie_needed: bool = True,
    cors_config: Any = None,
    heartbeat_delay: float = 25,
    disconnect_delay: float = 5,
    debug: bool = False,
    options: SockJSOptions | None = None,
    backplane: Backplane | None = None,
) -> list[web.AbstractRoute]:
    """Mount a SockJS endpoint running an aio-libs handler; aio-libs' signature, plus two.

    Args:
        app: the aiohttp application (not yet started).
        handler: ``handler(manager, session, msg)``, async or not. Ignored when
            ``manager`` is given: the manager's handler runs, as in aio-libs.
        name: the endpoint's name for :func:`get_manager`; a free ``nNNN`` if empty.
        prefix: the URL prefix; a trailing ``/`` is dropped.
        manager: a :class:`SessionManager` (or subclass) named ``name``; its
            ``heartbeat_delay`` and ``disconnect_delay`` then apply.
        disable_transports: transports answered with 404, by aio-libs' names
            (``websocket``, ``websocket-raw``, ``xhr-streaming``, ``xhr-polling``,
            ``jsonp-polling``, ``htmlfile``, ``eventsource``); an unknown name raises.
        sockjs_cdn: the sockjs-client script the iframe page loads.
        cookie_needed: advertise ``cookie_needed`` and set ``JSESSIONID`` (aio-libs set
            the cookie whatever this said; here False means no cookie).
        cors_config: an ``aiohttp_cors`` config. Not applied (the endpoint answers CORS
            itself for the origins it allows); passing one warns. Allow other origins
            with ``options=SockJSOptions(allowed_origins=(...))``.
        heartbeat_delay: seconds of silence before a heartbeat; must be positive.
        disconnect_delay: seconds a session may lack a connection; must be positive.
        debug: accepted and ignored (use the ``sockjs_gateway`` logger).
        options: every other gateway setting (origins, limits, auth). Its fields that the
            arguments above cover are overridden by them.
        backplane: makes ``manager.broadcast`` reach every node (see the gateway's
            ``add_endpoint``).

    Returns:
        The routes registered, as aio-libs returns them.

    Raises:
        ValueError: ``manager`` is named differently, ``name`` is taken, a transport
            name is unknown, or a delay is not positive.
    """
    if manager is None:
        check_hook("handler", handler, ("manager", "session", "msg"))
    else:
        check_hook("manager.handler", manager.handler, ("manager", "session", "msg"))
    managers = app.setdefault(MANAGERS, {})
    if not name:
        name = _free_name(managers)
    if manager is None:
        manager = SessionManager(name, app, handler, heartbeat_delay, disconnect_delay, debug)
    if manager.name != name:
        raise ValueError("Session manage must have same name as sockjs route")
    if name in managers:
        raise ValueError(f'SockJS "{name}" route already registered')
    if cors_config is not None:
        warnings.warn(
            "cors_config is not applied: the endpoint answers CORS itself; "
            "allow other origins with options=SockJSOptions(allowed_origins=...)",
            stacklevel=2,
        )
    settings = dataclasses.replace(
        options or SockJSOptions(),
        heartbeat_delay=manager.heartbeat_delay,
        disconnect_delay=manager.disconnect_delay,
        cookie_needed=cookie_needed,
        disabled_transports=frozenset(_TRANSPORT_NAMES.get(t, t) for t in disable_transports),
        sockjs_url=sockjs_cdn,
    )
    before = {id(route) for route in app.router.routes()}
    manager.endpoint = add_gateway_endpoint(
        app, Bridge(manager), prefix=prefix, options=settings, backplane=backplane
    )
    managers[name] = manager
    return [route for route in app.router.routes() if id(route) not in before]


def _free_name(taken: dict[str, SessionManager]) -> str:
    number = 1000 + len(taken)
    while f"n{number}" in taken:
        number += 1
    return f"n{number}"
