"""Backplanes: several server processes (nodes) acting as one.

Each node holds the sessions that connected to it (HTTP fallbacks need a sticky load
balancer, see ``deploy/nginx.conf``); the backplane carries what must reach sessions on
every node: ``Endpoint.broadcast`` and STOMP ``/topic/`` and ``/user/`` messages, each
delivered exactly once per subscriber (see :mod:`.base` for the contract, :mod:`.redis`
for how Redis keeps it and what happens during an outage). STOMP ``/queue/`` stays
node-local (:mod:`.bridge` says why).

``RedisBackplane`` needs the ``redis`` extra; it is imported on first use, so this
package imports without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Backplane, BackplaneState, BackplaneUnavailable, Deliver, Subscription
from .channel import Channel
from .lifecycle import BACKPLANES, run_with_app
from .memory import MemoryBackplane, MemoryHub

if TYPE_CHECKING:
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
    "run_with_app",
    "BACKPLANES",
]


_LAZY = {"RedisBackplane": ".redis"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
