"""Which web origins may use an endpoint.

A browser names the page's origin in the ``Origin`` header of WebSocket handshakes, of
every XHR and of cross-origin EventSource requests. Script and iframe loads (the htmlfile
and jsonp transports, the iframe page) carry no ``Origin``, so for them we take the origin
of the ``Referer``; a request that proves no origin at all is refused there unless every
origin is allowed. Spring refuses those transports outright when origins are restricted;
checking the referring page instead keeps them working for same-origin pages, which are
exactly the old browsers that need them.

Patterns: ``"*"`` allows every origin; otherwise each pattern is an origin in which ``*``
stands for any run of characters except ``/`` (``"https://*.example.com"``,
``"http://localhost:*"``). An empty list means "the server's own origin only".
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["OriginPolicy", "Verdict", "origin_of_url"]

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


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


def _origin_authority(origin: str) -> str | None:
    """``host[:port]`` of an origin, without its scheme's default port."""
    scheme, sep, authority = origin.partition("://")
    if not sep or not authority or "/" in authority:
        return None
    default = _DEFAULT_PORTS.get(scheme)
    if default and authority.endswith(":" + default):
        authority = authority[: -len(default) - 1]
    return authority


def _host_authority(host: str) -> str:
    # The Host header does not say whether a TLS proxy sits in front, so either default
    # port counts as "no port".
    host = host.lower()
    for port in (":80", ":443"):
        if host.endswith(port):
            return host[: -len(port)]
    return host


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

    def check(self, origin: str | None, host: str | None) -> Verdict:
        """Judge ``origin`` (``Origin`` header, or the origin of ``Referer``) for a request
        that reached this server as ``host`` (its ``Host`` header)."""
        if not origin:
            return Verdict.UNKNOWN
        if self.any:
            return Verdict.ALLOW
        origin = origin.lower()
        if host and _origin_authority(origin) == _host_authority(host):
            return Verdict.ALLOW
        if any(pattern.fullmatch(origin) for pattern in self._compiled):
            return Verdict.ALLOW
        return Verdict.DENY

    def advertised(self) -> list[str]:
        """What ``/info`` says in ``origins``."""
        return ["*:*"] if self.any else list(self.patterns)
