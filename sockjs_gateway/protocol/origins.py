"""Which web origins may use an endpoint.

A browser names the page's origin in the ``Origin`` header of WebSocket handshakes, of
every XHR and of cross-origin EventSource requests. Script and iframe loads (the htmlfile
and jsonp transports, the iframe page) carry no ``Origin``, so for them we take the origin
of the ``Referer``; a request that proves no origin at all is refused there unless every
origin is allowed. Spring refuses those transports outright when origins are restricted;
checking the referring page instead keeps them working for same-origin pages, which are
exactly the old browsers that need them.

Same origin means same scheme, host and port (RFC 6454). Browsers only ever put ``http``
or ``https`` in ``Origin`` (a WebSocket handshake carries the page's origin), so a page
is the server's own when its scheme is the request's scheme, its host the ``Host``
header's host, and its port the ``Host`` header's port (each scheme's default port when
one leaves it out). The request's scheme is the first ``X-Forwarded-Proto`` (or
``Forwarded: proto=``) a TLS proxy in front sets, else the connection's own. Trusting that
header cannot widen the check for a browser: a cross-origin page cannot add it to a
WebSocket handshake or a script load, and adding it to an XHR forces a preflight, which
carries the page's true ``Origin`` without it and is refused.

Patterns: ``"*"`` allows every origin; otherwise each pattern is an origin in which ``*``
stands for any run of characters except ``/`` (``"https://*.example.com"``,
``"http://localhost:*"``). An empty list means "the server's own origin only".
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["OriginPolicy", "Verdict", "origin_of_url", "request_scheme", "split_host"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_FORWARDED_PROTO = re.compile(r"(?:^|[;,\s])proto=\"?(https?)\"?(?:$|[;,\s])", re.IGNORECASE)


class Verdict(enum.Enum):
    """What the policy says about one request."""

    ALLOW = "allow"  #: the origin is allowed
    DENY = "deny"  #: the origin is known and not allowed
    UNKNOWN = "unknown"  #: the request names no origin (not a cross-origin browser request)


def origin_of_url(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL (for a ``Referer``), or None if it has none."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()


def request_scheme(
    connection_scheme: str, forwarded_proto: str | None = None, forwarded: str | None = None
) -> str:
    """The scheme the browser used: the first hop's ``X-Forwarded-Proto``, else the
    ``proto`` of the first ``Forwarded`` element, else the connection's own scheme."""
    if forwarded_proto:
        first = forwarded_proto.split(",", 1)[0].strip().lower()
        if first in _DEFAULT_PORTS:
            return first
    if forwarded:
        match = _FORWARDED_PROTO.search(forwarded.split(",", 1)[0])
        if match:
            return match.group(1).lower()
    return connection_scheme.lower()


def split_host(authority: str) -> tuple[str, str | None]:
    """``(host, port)`` of a ``Host`` header or an origin's authority, lower-cased; an
    IPv6 literal keeps its brackets; ``port`` is None when absent."""
    authority = authority.lower()
    if authority.startswith("["):
        end = authority.find("]") + 1
        host, rest = authority[:end], authority[end:]
        if end and not rest:
            return host, None
        if end and rest.startswith(":") and rest[1:].isdigit():
            return host, rest[1:]
        return authority, None
    host, colon, port = authority.rpartition(":")
    if not colon or not port.isdigit():
        return authority, None
    return host, port


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    origin_scheme, sep, authority = origin.partition("://")
    default = _DEFAULT_PORTS.get(scheme)
    if not sep or not authority or "/" in authority or origin_scheme != scheme or not default:
        return False
    origin_host, origin_port = split_host(authority)
    host_name, host_port = split_host(host)
    return origin_host == host_name and (origin_port or default) == (host_port or default)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("[^/]*".join(re.escape(part) for part in pattern.lower().split("*")))


class OriginPolicy:
    """An allowlist of origin patterns; see the module docstring."""

    __slots__ = ("any", "patterns", "_compiled")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        #: True when every origin is allowed (the list holds ``"*"``).
        self.any = "*" in self.patterns
        self._compiled = [_compile(p) for p in self.patterns if p != "*"]

    @property
    def same_origin_only(self) -> bool:
        """True when only the server's own origin is allowed."""
        return not self.patterns

    def check(self, origin: str | None, host: str | None, scheme: str = "http") -> Verdict:
        """Judge ``origin`` (``Origin`` header, or the origin of ``Referer``) for a request
        that reached this server as ``host`` (its ``Host`` header) over ``scheme`` (see
        :func:`request_scheme`)."""
        if not origin:
            return Verdict.UNKNOWN
        if self.any:
            return Verdict.ALLOW
        origin = origin.lower()
        if host and _same_origin(origin, host, scheme.lower()):
            return Verdict.ALLOW
        if any(pattern.fullmatch(origin) for pattern in self._compiled):
            return Verdict.ALLOW
        return Verdict.DENY

    def advertised(self) -> list[str]:
        """What ``/info`` says in ``origins``."""
        return ["*:*"] if self.any else list(self.patterns)
