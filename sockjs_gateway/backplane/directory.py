"""``Directory``: which node owns an HTTP session, so that any node can answer any request.

A session lives on one node, its *owner*: the node that took its opening request, where
its handler runs. The client chooses both the session id and the server-id segment of
the URL, so neither can name the owner; the directory does. A node that gets a request
for a session it does not hold asks the directory, and relays the request to the owner
(:mod:`sockjs_gateway.server.relay`).

The capability is optional: a backplane offers it as its ``directory`` attribute
(:class:`~.memory.MemoryBackplane` through its :class:`~.memory.MemoryHub`, and
:class:`~.redis.RedisBackplane` with one Redis key per session); a backplane without one
serves sticky deployments only.

What a claim decides, in one atomic step (one Redis round trip, a Lua script):

* nobody owns the key: the caller does now;
* a live node owns it: that node's id (the caller relays);
* the owner is dead (its liveness key expired): the caller takes the key over. The old
  session died with its node; the caller opens a fresh one, as for an unknown id.

A node is *live* while its liveness key exists: it is set with a TTL of
``alive_ttl`` seconds and renewed every third of that. Owner keys carry a longer TTL
(``session_ttl``), renewed in one pipelined round for all of a node's sessions, and are
deleted (only if still ours) when the session is forgotten; the TTL only bounds what a
dead node leaves behind, because liveness is read from the node key.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Directory", "MemoryDirectory"]


class Directory(Protocol):
    """Session ownership shared by the nodes of one cluster (see the module docstring).

    Keys are strings chosen by the caller (one per endpoint and session id). Methods that
    need the bus raise :class:`~.base.BackplaneUnavailable` when it cannot be reached;
    they never wait longer than the backend's short command timeout.
    """

    @property
    def node_id(self) -> str:
        """This node's id (the value a claim stores)."""

    async def claim(self, key: str) -> str:
        """Own ``key`` unless a live node does; returns the owner's id (ours if claimed)."""

    async def owner(self, key: str) -> str | None:
        """The live node that owns ``key``, or None (nobody, or a dead node)."""

    def release(self, key: str) -> None:
        """Stop owning ``key`` (if we do); never waits."""


class MemoryDirectory:
    """The directory of the :class:`~.memory.MemoryBackplane` nodes sharing one hub: a
    dict on the hub. A node is live while it is on the hub and not closed."""

    def __init__(self, owners: dict[str, str], alive: set[str], node_id: str) -> None:
        self._owners = owners
        self._alive = alive
        self._node_id = node_id

    @property
    def node_id(self) -> str:
        return self._node_id

    async def claim(self, key: str) -> str:
        current = self._owners.get(key)
        if current is None or current == self._node_id or current not in self._alive:
            self._owners[key] = self._node_id
            return self._node_id
        return current

    async def owner(self, key: str) -> str | None:
        current = self._owners.get(key)
        return current if current is not None and current in self._alive else None

    def release(self, key: str) -> None:
        if self._owners.get(key) == self._node_id:
            del self._owners[key]
