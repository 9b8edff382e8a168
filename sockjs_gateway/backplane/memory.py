"""``MemoryBackplane``: the embedded backplane, for one process.

One process needs no bus: an endpoint or broker without a backplane delivers in the
process, which is what a lone ``MemoryBackplane`` does too (``add_endpoint`` skips the hop
when given none). Several ``MemoryBackplane`` objects sharing one :class:`MemoryHub` act as
the nodes of one cluster inside one process, which is how the contract suite and the
in-process multi-node tests run every backend-independent check without a Redis server.

Delivery to every node is synchronous: there is no connection to lose, so the state is
``UP`` from creation until :meth:`MemoryBackplane.close`, and nothing is ever pending.
"""

from __future__ import annotations

import secrets

from .base import BackplaneState, BackplaneStats, BackplaneUnavailable
from .directory import MemoryDirectory
from .fanout import Fanout, LocalNode

__all__ = ["MemoryBackplane", "MemoryHub"]


class MemoryHub:
    """The bus of the :class:`MemoryBackplane` nodes that share it."""

    def __init__(self) -> None:
        self.nodes: list[MemoryBackplane] = []
        #: Session ownership (see :mod:`.directory`): key -> node id.
        self.owners: dict[str, str] = {}
        #: The ids of the nodes that are live (on the hub and not closed).
        self.alive: set[str] = set()


class MemoryBackplane(LocalNode):
    """A node of an in-process cluster (see the module docstring).

    Args:
        hub: the bus shared with other nodes; a private one when omitted.
        node_id: this node's id; random when omitted.
    """

    backend = "memory"

    def __init__(self, hub: MemoryHub | None = None, *, node_id: str | None = None) -> None:
        self._hub = hub if hub is not None else MemoryHub()
        self._hub.nodes.append(self)
        self._node_id = node_id or secrets.token_hex(8)
        self._state = BackplaneState.UP
        self.stats = BackplaneStats()
        self._fanout = Fanout(self.stats)
        self._hub.alive.add(self._node_id)
        #: Session ownership shared with the other nodes of the hub.
        self.directory = MemoryDirectory(self._hub.owners, self._hub.alive, self._node_id)

    @property
    def pending(self) -> int:
        return 0

    def publish(self, channel: str, payload: bytes) -> None:
        if self._state is BackplaneState.CLOSED:
            self.stats.dropped["closed"] += 1
            return
        self._fanout.deliver(channel, payload)
        self.stats.published += 1
        for node in tuple(self._hub.nodes):
            if node is not self and node._state is BackplaneState.UP:
                node.stats.received += 1
                node._fanout.deliver(channel, payload)

    async def start(self) -> None:
        return None

    async def flush(self) -> None:
        if self._state is BackplaneState.CLOSED:
            raise BackplaneUnavailable("the backplane is closed")

    async def close(self) -> None:
        if self._state is BackplaneState.CLOSED:
            return
        self._state = BackplaneState.CLOSED
        self._fanout.clear()
        if self in self._hub.nodes:
            self._hub.nodes.remove(self)
        self._hub.alive.discard(self._node_id)
