"""The endpoints the SockJS protocol suite and real-client tests expect.

As in sockjs-node's test server: ``/echo`` (echo, streaming responses recycled at
``response_limit``), ``/close`` (closes every session with 3000 "Go away!" as it opens),
``/disabled_websocket_echo``, ``/cookie_needed_echo``, ``/broadcast`` (every message
to every session), and ``/amplify`` (a message ``n`` is answered with ``2**n`` bytes, as
in sockjs-client's own test server, for its large-download tests). Each also answers on
its raw ``/websocket`` route. ``/stomp`` serves STOMP (see :func:`make_stomp_broker`)
for the STOMP client tests. With a backplane (``testserver --redis URL``), ``/broadcast``
and ``/stomp`` topics span every node.
"""

from __future__ import annotations

import math
from dataclasses import replace

from aiohttp import web

from .backplane.base import Backplane
from .options import SockJSOptions
from .server.endpoint import add_endpoint
from .server.session import Session
from .stomp import AppMessage, Broker, StompHandler, StompOptions

__all__ = [
    "EchoHandler",
    "CloseHandler",
    "AmplifyHandler",
    "BroadcastHandler",
    "make_app",
    "make_stomp_broker",
]


class EchoHandler:
    """Sends every message back to its sender."""

    async def on_open(self, session: Session) -> None:
        return None

    async def on_message(self, session: Session, message: str) -> None:
        session.send(message)

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        return None


class CloseHandler(EchoHandler):
    """Closes each session as soon as it opens."""

    async def on_open(self, session: Session) -> None:
        session.close(3000, "Go away!")


class AmplifyHandler(EchoHandler):
    """Answers a message ``n`` with ``"x" * 2**n``, as sockjs-client's test server does:
    ``n`` is the message read as a number and rounded down, and anything outside 1..18
    (or not a number) counts as 1."""

    async def on_message(self, session: Session, message: str) -> None:
        session.send("x" * 2 ** amplify_exponent(message))


def amplify_exponent(message: str) -> int:
    """The exponent ``/amplify`` uses for ``message`` (JavaScript's
    ``Math.floor(Number(m))``, kept to 1..18)."""
    try:
        value = float(message.strip() or "0")
    except ValueError:
        return 1
    if not 0 < value < 19:  # also NaN and infinities
        return 1
    return max(1, math.floor(value))


class BroadcastHandler(EchoHandler):
    """Sends every message to every session of the endpoint."""

    async def on_message(self, session: Session, message: str) -> None:
        session.endpoint.broadcast(message)


def make_stomp_broker(options: StompOptions | None = None) -> Broker:
    """A broker with ``/app/echo`` (replies to the sender on ``/user/queue/echo``) and
    ``/app/shout`` (publishes the body, upper-cased, to ``/topic/shout``)."""
    broker = Broker(options)

    @broker.message_mapping("/echo")
    def echo(message: AppMessage) -> None:
        message.reply(message.body, headers=message.headers)

    @broker.message_mapping("/shout")
    def shout(message: AppMessage) -> None:
        message.publish("/topic/shout", message.text.upper())

    return broker


def make_app(
    *,
    response_limit: int = 4096,
    options: SockJSOptions | None = None,
    backplane: Backplane | None = None,
    redis_url: str | None = None,
) -> web.Application:
    """The test application. ``options`` (if given) is the base for every endpoint;
    ``backplane`` (if given) carries broadcasts and STOMP topics to other nodes, and relays
    requests for sessions another node owns; ``redis_url`` makes that a
    ``RedisBackplane`` on this URL (for gunicorn, which can pass only literals:
    ``'sockjs_gateway.testserver:make_app(redis_url="redis://...")'``)."""
    # The protocol suite and the client tests call from any origin.
    base = replace(options or SockJSOptions(allowed_origins=("*",)), response_limit=response_limit)
    app = web.Application()
    add_endpoint(app, EchoHandler(), prefix="/echo", options=base)
    add_endpoint(app, CloseHandler(), prefix="/close", options=base)
    add_endpoint(
        app,
        EchoHandler(),
        prefix="/disabled_websocket_echo",
        options=replace(base, disabled_transports=frozenset({"websocket"})),
    )
    add_endpoint(
        app, EchoHandler(), prefix="/cookie_needed_echo", options=replace(base, cookie_needed=True)
    )
    add_endpoint(app, AmplifyHandler(), prefix="/amplify", options=base)
    add_endpoint(app, BroadcastHandler(), prefix="/broadcast", options=base)
    add_endpoint(app, StompHandler(make_stomp_broker()), prefix="/stomp", options=base)
    if backplane is None and redis_url is not None:
        from .backplane.redis import RedisBackplane

        backplane = RedisBackplane(redis_url)
    if backplane is not None:
        from .cluster import use_backplane

        use_backplane(app, backplane)
    return app
