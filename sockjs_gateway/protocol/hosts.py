"""Which ``Host`` names a server answers to: the defence against DNS rebinding.

A page on ``http://rebind.evil.com:8080`` whose name the attacker then points at
127.0.0.1 (or a private address) reaches a server the attacker could never reach, and
to the browser it is the page's own origin: ``Origin`` and ``Host`` both say
``rebind.evil.com:8080``, so the same-origin check passes, cookies for that name flow, and
the page reads the answers. Only the ``Host`` name tells the server that it was not
meant: a list of the names it serves refuses it.

Patterns are host names without a port (every port matches), lower-case or not, where
``*`` stands for any run of characters but ``:`` (``"*.example.com"``); ``"*"`` alone
allows every name. IPv6 literals are written without brackets (``"::1"``). With
``ip_literals``, any IP address passes as well: an address in the URL is not a name an
attacker's DNS can move.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from .origins import split_host

__all__ = ["HostPolicy", "LOOPBACK_NAMES"]

#: Names that always mean this machine (browsers resolve ``*.localhost`` to loopback
#: themselves, RFC 6761), so they can never be rebound.
LOOPBACK_NAMES = ("localhost", "*.localhost", "127.0.0.1", "::1")


def _compile(pattern: str) -> re.Pattern[str]:
    pattern = pattern.lower().strip("[]").rstrip(".")
    return re.compile("[^:]*".join(re.escape(part) for part in pattern.split("*")))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """An allowlist of ``Host`` names; see the module docstring. Empty allows every name."""

    __slots__ = ("patterns", "ip_literals", "any", "_compiled")

    def __init__(self, patterns: Iterable[str], *, ip_literals: bool = False) -> None:
        self.patterns = tuple(patterns)
        self.ip_literals = ip_literals
        #: True when no ``Host`` is ever refused.
        self.any = not self.patterns or "*" in self.patterns
        self._compiled = [_compile(p) for p in self.patterns]

    def allows(self, host: str | None) -> bool:
        """Whether a request whose ``Host`` header is ``host`` may be served. A request
        without one (HTTP/1.0, not a browser) is not a rebinding attack and passes."""
        if self.any or not host:
            return True
        name, _ = split_host(host)
        name = name.strip("[]").rstrip(".")
        if self.ip_literals and _is_ip(name):
            return True
        return any(pattern.fullmatch(name) for pattern in self._compiled)

    def described(self) -> str:
        """The list, for a log line."""
        names = ", ".join(self.patterns) if self.patterns else "*"
        return names + (" and any IP address" if self.ip_literals else "")
