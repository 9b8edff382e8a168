"""Backplanes: several server processes (nodes) acting as one.

Each node holds the sessions that opened on it, their *owner*; the backplane carries what
must reach sessions on every node: ``Endpoint.broadcast`` and STOMP ``/topic/`` and
``/user/`` messages, each delivered exactly once per subscriber (see :mod:`.base` for the
contract, :mod:`.redis` for how Redis keeps it and what happens during an outage). STOMP
``/queue/`` stays node-local (:mod:`.bridge` says why).

A backplane may also keep a session :mod:`.directory` (memory and Redis do): then any node
answers any HTTP request of any session, relaying it to the owner
(:mod:`sockjs_gateway.server.relay`), so the HTTP fallbacks need no sticky load balancer.
Sticky routing (``deploy/nginx.conf``) still saves the relay hop.

``RedisBackplane`` needs the ``redis`` extra, and ``BrokerBridge`` / ``use_backplane``
import the STOMP and server packages, which import this one: all three are imported on
first use, so this package imports without the extra and without a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Backplane, BackplaneState, BackplaneUnavailable, Deliver, Subscription
from .channel import Channel
from .directory import Directory, MemoryDirectory
from .lifecycle import BACKPLANES, run_with_app
from .memory import MemoryBackplane, MemoryHub

if TYPE_CHECKING:
    from .app import use_backplane
    from .bridge import BrokerBridge
    from .redis import RedisBackplane

__all__ = [
    "Backplane",
    "BackplaneState",
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


_LAZY = {"RedisBackplane": ".redis", "BrokerBridge": ".bridge", "use_backplane": ".app"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
