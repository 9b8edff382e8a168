"""sockjs_gateway: a SockJS server for aiohttp.

Mount an endpoint with :func:`add_endpoint` and give it a :class:`Handler`; each client
gets a :class:`Session` whatever transport (WebSocket, xhr-streaming, eventsource,
htmlfile, xhr-polling, jsonp-polling) carries it.
"""

from .exceptions import BadPayload, LocalProtocolError, RemoteProtocolError, SockJSError
from .handler import ConnectionInfo, Handler, run_blocking
from .metrics import add_metrics_route
from .options import SockJSOptions
from .protocol.state import SessionState
from .server.endpoint import ENDPOINTS, Endpoint, add_endpoint, drain
from .server.session import Session

__version__ = "0.1.0"

__all__ = [
    "add_endpoint",
    "Endpoint",
    "ENDPOINTS",
    "drain",
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
