"""The ``Host`` check for a whole aiohttp app, as ``python -m sockjs_gateway serve`` uses
it: every route (pages, static files, endpoints) answers only to the names it serves, so
a DNS-rebound page gets 421 "Host not allowed." (see :mod:`sockjs_gateway.protocol.hosts`).

421 Misdirected Request (RFC 9110, 15.5.20) says "this server does not serve that name",
which is exactly the case, and keeps it apart from the 403 of an origin refused.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..logs import refusal
from ..protocol.hosts import LOOPBACK_NAMES, HostPolicy
from .static import text_response

__all__ = ["allowed_hosts_middleware", "default_host_policy", "HOST_NOT_ALLOWED"]

#: Body of the 421 answer.
HOST_NOT_ALLOWED = "Host not allowed."


def default_host_policy(bind_host: str, extra: tuple[str, ...] = ()) -> HostPolicy:
    """What ``serve --host bind_host`` answers to: the bound name, the loopback names
    (a loopback bind is reached as localhost, 127.0.0.1 or ::1; on other binds they can
    only come from this machine), this machine's host name, any IP address (an address
    in the URL cannot be rebound), and ``extra``."""
    names = [bind_host.strip("[]"), *LOOPBACK_NAMES, socket.gethostname(), *extra]
    wildcard = bind_host in ("", "0.0.0.0", "::")
    kept = tuple(dict.fromkeys(n for n in names if n and not (wildcard and _unspecified(n))))
    return HostPolicy(kept, ip_literals=True)


def _unspecified(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_unspecified
    except ValueError:
        return False


def allowed_hosts_middleware(policy: HostPolicy) -> Middleware:
    """An aiohttp middleware answering 421 to a request whose ``Host`` ``policy`` refuses
    (one log line per refusal, rate-limited)."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not policy.allows(host):
            refusal(
                "host",
                "Host %r refused on %s from %s (allowed hosts: %s)",
                host,
                request.path,
                request.remote,
                policy.described(),
            )
            return text_response(421, HOST_NOT_ALLOWED)
        return await handler(request)

    return check_host
