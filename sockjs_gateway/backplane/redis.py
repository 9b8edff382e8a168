"""``RedisBackplane``: the nodes of a cluster meet on one Redis server's pub/sub.

Why pub/sub: broadcast and topic traffic is live data for whoever is connected now, which
is exactly what Redis pub/sub offers (fan-out, no storage, no acknowledgements), with no
cluster of our own to run.

Exactly once. A message is published to Redis once, as ``<node id> NUL <payload>`` on the
key ``<prefix><channel>``. Each node holds one subscriber connection, subscribed once to
every channel it has local subscribers for, so Redis hands each node one copy. The
publishing node delivered locally before publishing and drops the copy that comes back
with its own id. Messages in flight when a connection breaks are never sent again (Redis
may have delivered them already; a resend could deliver twice): they are counted as
dropped ("in-flight"). So: exactly once while connected, at most once across an outage.

Outage policy (see :mod:`.outbox`): local delivery never stops. Messages for other nodes
wait in a buffer of ``max_pending`` messages / ``max_pending_bytes`` bytes, sent when the
connection is back; past either bound the oldest are dropped and counted ("overflow").
Pub/sub keeps nothing, so a node that was itself cut off misses what others published
meanwhile, and buffered messages reach only the nodes subscribed when they are sent.

Reconnection. This module holds the state and the wire format; the connections are a
:class:`~.redis_link.RedisLink` (see :mod:`.redis_link`), run as one task per link. When a
link ends, the state goes ``DOWN`` (logged once, not per retry), and a
``loop.call_later`` handle starts the next link after a capped exponential backoff with
jitter (:func:`.outbox.backoff_delay`). A link that comes up is subscribed to every wanted
channel before the state goes ``UP`` (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets

from redis.exceptions import RedisError
from yarl import URL

from .base import BackplaneState, BackplaneStats, BackplaneUnavailable
from .fanout import Fanout, LocalNode
from .outbox import Outbox, backoff_delay
from .redis_directory import RedisDirectory
from .redis_link import RedisLink

__all__ = ["RedisBackplane"]

log = logging.getLogger("sockjs_gateway.backplane")

_EXPECTED = (RedisError, OSError, TimeoutError, BackplaneUnavailable)


class RedisBackplane(LocalNode):
    """A node of a cluster whose bus is a Redis server (see the module docstring).

    Args:
        url: the Redis server, ``redis://[[user]:password@]host:port[/db]``.
        node_id: this node's id, unique in the cluster; random when omitted.
        prefix: prepended to every channel, so that clusters can share one Redis.
        max_pending: messages buffered for other nodes at most (outage policy).
        max_pending_bytes: bytes buffered for other nodes at most.
        timeout: seconds allowed to connect and subscribe, and for a command's reply.
        ping_interval: seconds of subscriber silence before a PING; as long again without
            an answer and the connection is considered dead.
        backoff_initial: seconds before the first reconnection attempt (then doubled).
        backoff_max: the most seconds between two attempts.
        startup_wait: seconds :meth:`start` waits for the first connection.
    """

    backend = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        *,
        node_id: str | None = None,
        prefix: str = "sockjs_gateway:",
        max_pending: int = 1000,
        max_pending_bytes: int = 8 * 1024 * 1024,
        timeout: float = 5.0,
        ping_interval: float = 5.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        startup_wait: float = 2.0,
    ) -> None:
        node_id = node_id or secrets.token_hex(8)
        if "\0" in node_id or "\0" in prefix:
            raise ValueError("node_id and prefix cannot hold NUL")
        if min(timeout, ping_interval, backoff_initial) <= 0 or backoff_max < backoff_initial:
            raise ValueError("timeouts must be positive and backoff_max >= backoff_initial")
        self._where = str(URL(url).with_user(None))  # for logs: no password
        self._node_id = node_id
        self._prefix = prefix
        self._skip = len(prefix.encode())
        self._tag = node_id.encode() + b"\0"
        self._control = f"{prefix}node:{node_id}".encode()  # keeps the subscriber subscribed
        self._timeout = timeout
        self._backoff = (backoff_initial, backoff_max)
        self._startup_wait = startup_wait
        self.stats = BackplaneStats()
        self._outbox = Outbox(max_pending, max_pending_bytes)
        self._link = RedisLink(
            url,
            timeout=timeout,
            ping_interval=ping_interval,
            stats=self.stats,
            outbox=self._outbox,
            wanted=self._wanted,
            on_message=self._received,
            on_up=self._went_up,
        )
        self._fanout = Fanout(self.stats, on_change=self._link.wake)
        self._state = BackplaneState.CONNECTING
        self._ever_up = False
        self._failures = 0  # consecutive, for the backoff
        self._task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._up_event = asyncio.Event()
        #: Session ownership for relaying (see :mod:`.redis_directory`).
        self.directory = RedisDirectory(
            url, node_id=node_id, prefix=prefix, is_up=lambda: self.up, timeout=min(timeout, 1.0)
        )

    # -- the Backplane interface ---------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._outbox)

    def publish(self, channel: str, payload: bytes) -> None:
        if self._state is BackplaneState.CLOSED:
            self.stats.dropped["closed"] += 1
            return
        self._fanout.deliver(channel, payload)
        dropped = self._outbox.push((self._prefix + channel).encode(), self._tag + payload)
        if dropped:
            self.stats.dropped["overflow"] += dropped
        self._link.wake()

    async def start(self) -> None:
        if self._state is BackplaneState.CLOSED:
            raise RuntimeError("the backplane is closed")
        if self._task is None and self._retry is None:
            self._spawn()
        self.directory.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up_event.wait(), self._startup_wait)

    async def flush(self) -> None:
        if self._state is not BackplaneState.UP:
            raise BackplaneUnavailable(f"the backplane is {self._state.value}")
        await self._link.flush()

    async def close(self) -> None:
        if self._state is BackplaneState.CLOSED:
            return
        self._state = BackplaneState.CLOSED
        await self.directory.close()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=self._timeout)
        self.stats.dropped["closed"] += self._outbox.clear()
        self._link.fail_flushes()
        self._fanout.clear()
        log.info("backplane: node %s closed its Redis link", self._node_id)

    # -- link lifecycle ------------------------------------------------------------------

    def _spawn(self) -> None:
        self._retry = None
        if self._state is BackplaneState.CLOSED:
            return
        task = asyncio.get_running_loop().create_task(self._link.run(), name="sockjs-backplane")
        task.add_done_callback(self._link_ended)
        self._task = task

    def _went_up(self) -> None:
        self._state = BackplaneState.UP
        self._failures = 0
        if self._ever_up:
            self.stats.reconnects += 1
            self.directory.reconnected()
            log.info(
                "backplane: node %s reconnected to Redis at %s; %d messages pending",
                self._node_id,
                self._where,
                len(self._outbox),
            )
        else:
            log.info("backplane: node %s connected to Redis at %s", self._node_id, self._where)
        self._ever_up = True
        self._up_event.set()

    def _link_ended(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled() or self._state is BackplaneState.CLOSED:
            return
        error = task.exception()
        self.stats.failures += 1
        self._failures += 1
        self._up_event.clear()
        self._link.fail_flushes()
        if self._state is not BackplaneState.DOWN:
            verb = "lost" if self._state is BackplaneState.UP else "cannot reach"
            self._state = BackplaneState.DOWN
            log.warning(
                "backplane: node %s %s Redis at %s (%s); serving local sessions only and"
                " reconnecting (backoff up to %gs); up to %d messages for other nodes are"
                " kept meanwhile, older ones dropped",
                self._node_id,
                verb,
                self._where,
                _describe(error),
                self._backoff[1],
                self._outbox.max_messages,
                exc_info=None if isinstance(error, _EXPECTED) else error,
            )
        delay = backoff_delay(self._failures, *self._backoff, random.random())
        self._retry = asyncio.get_running_loop().call_later(delay, self._spawn)

    def _wanted(self) -> set[bytes]:
        return {(self._prefix + c).encode() for c in self._fanout.channels()} | {self._control}

    def _received(self, key: bytes, data: bytes) -> None:
        """A message from Redis: deliver it here, unless it is this node's own."""
        if data.startswith(self._tag):
            return  # ours: delivered locally when published
        _, nul, payload = data.partition(b"\0")
        if nul:
            self.stats.received += 1
            self._fanout.deliver(key[self._skip :].decode(), payload)


def _describe(error: BaseException | None) -> str:
    text = str(error) if error is not None else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
