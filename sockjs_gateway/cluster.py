"""``use_backplane``: make an already built application one node of a cluster.

The command line's ``--redis`` builds the application first (the demo, the testserver or
a user's factory, none of which know about backplanes), then hands every endpoint and
STOMP broker on it to the backplane here. An application that mounts its own endpoints
can pass ``backplane=`` to ``add_endpoint`` and use :class:`~.stomp.bridge.BrokerBridge`
instead.

It sits on the application side (it knows endpoints and STOMP handlers), beside the
command line that calls it; ``sockjs_gateway.backplane.use_backplane`` still names it.
"""

from __future__ import annotations

from aiohttp import web

from .backplane.base import Backplane
from .backplane.lifecycle import run_with_app
from .server.endpoint import ENDPOINTS
from .stomp.app import StompHandler
from .stomp.bridge import BrokerBridge

__all__ = ["use_backplane"]


def use_backplane(app: web.Application, backplane: Backplane) -> None:
    """Route the broadcasts of every endpoint on ``app``, and the topic and user messages of
    every STOMP broker serving one, through ``backplane``; start and close it with ``app``.

    Endpoints that already have a backplane, and brokers already bridged, are left alone.
    """
    for endpoint in app.get(ENDPOINTS, []):
        if endpoint.backplane is None:
            endpoint.use_backplane(backplane)
        handler = endpoint.handler
        if isinstance(handler, StompHandler):
            broker = handler.broker
            if broker.topic_relay == broker.deliver_topic:
                BrokerBridge(broker, backplane, name=endpoint.prefix or "/")
    run_with_app(app, backplane)
