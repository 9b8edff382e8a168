"""sockjs_gateway: a SockJS server for aiohttp.

Mount an endpoint with :func:`add_endpoint` and give it a :class:`Handler`; each client
gets a :class:`Session` whatever transport (WebSocket, xhr-streaming, eventsource,
htmlfile, xhr-polling, jsonp-polling) carries it.

The names below are imported on first use (PEP 562), so importing a pure part of the
package, such as :mod:`sockjs_gateway.protocol`, loads neither aiohttp nor asyncio
(``tests/test_imports.py`` holds that rule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from ._version import __version__

if TYPE_CHECKING:
    from .exceptions import BadPayload, LocalProtocolError, RemoteProtocolError, SockJSError
    from .handler import Handler, run_blocking
    from .info import ConnectionInfo
    from .metrics import add_metrics_route
    from .options import SockJSOptions
    from .protocol.state import SessionState
    from .server.endpoint import ENDPOINTS, Endpoint, add_endpoint, drain
    from .server.eventstream import EventStream, add_event_stream
    from .server.session import Session

__all__ = [
    "add_endpoint",
    "Endpoint",
    "ENDPOINTS",
    "drain",
    "add_event_stream",
    "EventStream",
    "Handler",
    "run_blocking",
    "add_metrics_route",
    "Session",
    "SessionState",
    "ConnectionInfo",
    "SockJSOptions",
    "SockJSError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "BadPayload",
    "__version__",
]

#: Where each public name lives, relative to this package.
_LAZY = {
    "add_endpoint": ".server.endpoint",
    "Endpoint": ".server.endpoint",
    "ENDPOINTS": ".server.endpoint",
    "drain": ".server.endpoint",
    "add_event_stream": ".server.eventstream",
    "EventStream": ".server.eventstream",
    "Handler": ".handler",
    "run_blocking": ".handler",
    "add_metrics_route": ".metrics",
    "Session": ".server.session",
    "SessionState": ".protocol.state",
    "ConnectionInfo": ".info",
    "SockJSOptions": ".options",
    "SockJSError": ".exceptions",
    "RemoteProtocolError": ".exceptions",
    "LocalProtocolError": ".exceptions",
    "BadPayload": ".exceptions",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
