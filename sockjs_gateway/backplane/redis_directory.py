"""``RedisDirectory``: session ownership in Redis keys (see :mod:`.directory`).

Keys, under the backplane's prefix:

* ``<prefix>alive:<node id>``: this node is live. Set with a TTL of ``alive_ttl`` seconds
  and renewed every third of it, so a SIGKILLed node is known dead within ``alive_ttl``.
* ``<prefix>owner:<key>`` = node id: who owns a session. Claimed with a Lua script (one
  round trip, atomic: claim if free, answer the owner if it is live, take over from a
  dead one). TTL ``session_ttl``, renewed for every session of the node in one pipelined
  script round every third of it (never per message), deleted with a compare-and-delete
  script when the session is forgotten. The renewal also sets keys Redis lost (a
  restarted server without persistence), so sessions stay reachable after an outage.

Its own connection (pool), not the backplane's link: a claim is a request/response
command on the path of a request, and the link's writer batches fire-and-forget
publishes. Every command has a short timeout (``timeout``), and while the backplane is
not ``UP`` the directory answers :class:`~.base.BackplaneUnavailable` at once without
trying: a request that needs the directory fails fast during an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .base import BackplaneUnavailable

__all__ = ["RedisDirectory"]

log = logging.getLogger("sockjs_gateway.backplane")

# KEYS[1] owner key; ARGV: our id, TTL ms, liveness key prefix.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if redis.call('EXISTS', ARGV[3] .. current) == 1 then
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
# KEYS[1] owner key; ARGV[1] liveness key prefix.
_OWNER = """
local current = redis.call('GET', KEYS[1])
if current == false then return false end
if redis.call('EXISTS', ARGV[1] .. current) == 1 then return current end
return false
"""
# KEYS: owner keys; ARGV[1] our id.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""
# KEYS: owner keys; ARGV: our id, TTL ms. Renews ours, and sets those Redis lost (a
# restarted server without persistence), never one another node claimed meanwhile.
_RENEW = """
for _, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current == false or current == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return 0
"""
_RENEW_BATCH = 1000  # keys per script call, so that no call blocks Redis for long
_ERRORS = (RedisError, OSError, TimeoutError)


class RedisDirectory:
    """Session ownership for one node of a :class:`~.redis.RedisBackplane`.

    Args:
        url: the Redis server.
        node_id: this node's id.
        prefix: the backplane's key prefix.
        is_up: whether the backplane is connected now (else fail at once).
        timeout: seconds allowed for one command.
        alive_ttl: seconds after which a node that stopped renewing its key is dead.
        session_ttl: seconds an owner key outlives its last renewal.
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        prefix: str,
        is_up: Callable[[], bool],
        timeout: float = 1.0,
        alive_ttl: float = 3.0,
        session_ttl: float = 60.0,
    ) -> None:
        self._url = url
        self._node_id = node_id
        self._prefix = prefix
        self._is_up = is_up
        self._timeout = timeout
        self._alive_ttl = alive_ttl
        self._session_ttl = session_ttl
        self._alive_key = f"{prefix}alive:{node_id}"
        self._owned: set[str] = set()  # full owner keys of this node's sessions
        self._released: set[str] = set()  # to delete in the next round
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._failing: bool | str = False  # True, or "logged" once a line said so
        self._lost = False  # the backplane reconnected: Redis may have restarted empty
        self._rounds = 0
        # Owner keys are renewed every third of session_ttl: every this many rounds.
        self._rounds_per_renewal = max(1, int(session_ttl / alive_ttl))

    @property
    def node_id(self) -> str:
        return self._node_id

    def _redis(self) -> Redis:
        if self._client is None:
            self._client = Redis.from_url(
                self._url,
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
            )
        return self._client

    async def _call(self, script: str, keys: list[str], args: list[str | int]) -> object:
        if not self._is_up():
            raise BackplaneUnavailable("the backplane is not connected")
        try:
            async with asyncio.timeout(self._timeout):
                return await self._redis().eval(script, len(keys), *keys, *args)
        except _ERRORS as error:
            raise BackplaneUnavailable(f"session directory: {error}") from error

    async def claim(self, key: str) -> str:
        full = f"{self._prefix}owner:{key}"
        ttl = int(self._session_ttl * 1000)
        owner = await self._call(_CLAIM, [full], [self._node_id, ttl, f"{self._prefix}alive:"])
        owner = owner.decode() if isinstance(owner, bytes) else str(owner)
        if owner == self._node_id:
            self._owned.add(full)
            self._released.discard(full)
        return owner

    async def owner(self, key: str) -> str | None:
        full = f"{self._prefix}owner:{key}"
        owner = await self._call(_OWNER, [full], [f"{self._prefix}alive:"])
        if owner is None:
            return None
        return owner.decode() if isinstance(owner, bytes) else str(owner)

    def reconnected(self) -> None:
        """The backplane's link came back: set every owner key again in the next round
        (a Redis restarted without persistence lost them)."""
        self._lost = True

    def release(self, key: str) -> None:
        full = f"{self._prefix}owner:{key}"
        if full in self._owned:
            self._owned.discard(full)
            self._released.add(full)

    # -- liveness and renewals -------------------------------------------------------

    def start(self) -> None:
        """Start renewing this node's liveness and its owner keys (idempotent): one
        round now, then one every third of ``alive_ttl`` (a ``call_later`` handle that
        starts each round's task, never a sleeping loop)."""
        if self._timer is None and self._task is None and not self._closed:
            self._next_round()

    def _next_round(self) -> None:
        self._timer = None
        if self._closed:
            return
        renew_owned = self._rounds % self._rounds_per_renewal == 0
        self._rounds += 1
        task = asyncio.get_running_loop().create_task(
            self._round_logged(renew_owned), name="sockjs-directory"
        )
        self._task = task

    async def _round_logged(self, renew_owned: bool) -> None:
        try:
            await self._round(renew_owned=renew_owned)
            if self._failing == "logged":
                log.info("session directory: node %s renews its keys again", self._node_id)
            self._failing = False
        except _ERRORS as error:
            # While the backplane is down it has said so already: no second line.
            if self._failing != "logged" and self._is_up():
                log.warning(
                    "session directory: node %s cannot renew its keys (%s); retrying",
                    self._node_id,
                    error,
                )
                self._failing = "logged"
            elif not self._failing:
                self._failing = True
        finally:
            self._task = None
            if not self._closed:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._alive_ttl / 3, self._next_round)

    async def close(self) -> None:
        """Stop renewing; delete the liveness key and owner keys if Redis answers, so
        the other nodes learn at once that this node's sessions are gone."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(*_ERRORS):
                async with asyncio.timeout(self._timeout):
                    pipe = self._client.pipeline(transaction=False)
                    pipe.delete(self._alive_key)
                    keys = list(self._owned | self._released)
                    if keys:
                        pipe.eval(_RELEASE, len(keys), *keys, self._node_id)
                    await pipe.execute()
            with contextlib.suppress(*_ERRORS):
                await self._client.aclose()
            self._client = None

    async def _round(self, *, renew_owned: bool) -> None:
        released, self._released = self._released, set()
        async with asyncio.timeout(self._timeout):
            pipe = self._redis().pipeline(transaction=False)
            pipe.set(self._alive_key, b"1", px=int(self._alive_ttl * 1000))
            if released:
                pipe.eval(_RELEASE, len(released), *released, self._node_id)
            if renew_owned or self._failing or self._lost:  # Redis may have lost them
                self._lost = False
                ttl = int(self._session_ttl * 1000)
                owned = list(self._owned)
                for start in range(0, len(owned), _RENEW_BATCH):
                    batch = owned[start : start + _RENEW_BATCH]
                    pipe.eval(_RENEW, len(batch), *batch, self._node_id, ttl)
            await pipe.execute()
