"""Backplanes: several server processes (nodes) acting as one.

Each node holds the sessions that opened on it, their *owner*; the backplane carries what
must reach sessions on every node: ``Endpoint.broadcast`` and STOMP ``/topic/`` and
``/user/`` messages, each delivered exactly once per subscriber (see :mod:`.base` for the
contract, :mod:`.redis` for how Redis keeps it and what happens during an outage). STOMP
``/queue/`` stays node-local (:mod:`sockjs_gateway.stomp.bridge` says why).

A backplane may also keep a session :mod:`.directory` (memory and Redis do): then any node
answers any HTTP request of any session, relaying it to the owner
(:mod:`sockjs_gateway.server.relay`), so the HTTP fallbacks need no sticky load balancer.
Sticky routing (``deploy/nginx.conf``) still saves the relay hop.

This package never imports ``server/`` or ``stomp/`` (they import it). ``RedisBackplane``
needs the ``redis`` extra; it and the two names that live outside (``BrokerBridge`` in
``stomp/bridge.py``, ``use_backplane`` in ``cluster.py``) are imported on first use, so this
package imports without the extra and without a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from .base import (
    Backplane,
    BackplaneState,
    BackplaneStats,
    BackplaneUnavailable,
    Channel,
    Deliver,
    Subscription,
)
from .directory import Directory, MemoryDirectory
from .lifecycle import BACKPLANES, run_with_app
from .memory import MemoryBackplane, MemoryHub

if TYPE_CHECKING:
    from ..cluster import use_backplane
    from ..stomp.bridge import BrokerBridge
    from .redis import RedisBackplane

__all__ = [
    "Backplane",
    "BackplaneState",
    "BackplaneStats",
    "BackplaneUnavailable",
    "Deliver",
    "Subscription",
    "MemoryBackplane",
    "MemoryHub",
    "RedisBackplane",
    "Channel",
    "Directory",
    "MemoryDirectory",
    "BrokerBridge",
    "use_backplane",
    "run_with_app",
    "BACKPLANES",
]


#: Loaded on first use. ``BrokerBridge`` (in ``stomp/``) and ``use_backplane`` (in
#: ``cluster.py``) live outside this package, which never imports them itself: these two
#: names stay here because the README and users import them from here.
_LAZY = {
    "RedisBackplane": ".redis",
    "BrokerBridge": "..stomp.bridge",
    "use_backplane": "..cluster",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
