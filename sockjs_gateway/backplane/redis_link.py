"""``RedisLink``: the I/O of a :class:`~.redis.RedisBackplane`, one Redis link at a time.

Why its own module: the backplane decides *when* to be connected (state, reconnection,
backoff) and what the bytes on the bus mean; this module only moves them, so each side
reads on its own.

A *link* is one :meth:`RedisLink.run` holding two connections: commands (``PUBLISH``,
pipelined in batches) and subscriber (``SUBSCRIBE``, ``PING``). One writer task per link
sends everything, in order; one reader task delivers what arrives. A subscriber
connection silent for ``ping_interval`` is pinged; no answer within another
``ping_interval`` ends the link, which is how a silent network failure is noticed. When
either connection fails, both are closed and :meth:`RedisLink.run` raises; the backplane
starts the next link after its backoff. A link that comes up subscribes every wanted
channel before it reports ``UP``, and afterwards keeps Redis's subscriptions matching the
wanted channels. A batch of ``PUBLISH`` commands that fails is never sent again (Redis
may have delivered it already): it is counted as dropped ("in-flight").

A flush is a ``PING`` with a token of its own, sent after every earlier publish and
subscription change: the pong comes back once Redis has done them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .base import BackplaneStats, BackplaneUnavailable
from .outbox import Outbox

__all__ = ["RedisLink"]

#: Messages and bytes of one pipelined batch of PUBLISH commands.
_BATCH_MESSAGES = 512
_BATCH_BYTES = 1024 * 1024
_ALIVE = b"alive"  # PING token of the liveness check


class RedisLink:
    """The connections of one backplane to Redis; each :meth:`run` is one link.

    Args:
        url: the Redis server.
        timeout: seconds allowed to connect and subscribe, and for a command's reply.
        ping_interval: seconds of subscriber silence before a PING; as long again without
            an answer and the link ends.
        stats: where published and in-flight-dropped messages are counted.
        outbox: the messages to publish, as ``(key, data)``; taken in batches.
        wanted: the keys Redis should have this node subscribed to now.
        on_message: called with ``(key, data)`` for each message from the subscriber.
        on_up: called once a link is connected and subscribed.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        ping_interval: float,
        stats: BackplaneStats,
        outbox: Outbox,
        wanted: Callable[[], set[bytes]],
        on_message: Callable[[bytes, bytes], None],
        on_up: Callable[[], None],
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._stats = stats
        self._outbox = outbox
        self._wanted = wanted
        self._on_message = on_message
        self._on_up = on_up
        self._wake = asyncio.Event()
        self._subscribed: set[bytes] = set()
        self._ping_wanted = False
        self._ping_outstanding = False
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._pongs: dict[bytes, list[asyncio.Future[None]]] = {}
        self._tokens = 0

    def wake(self) -> None:
        """Have the writer look again: messages to send, or subscriptions changed."""
        self._wake.set()

    async def flush(self) -> None:
        """Wait for Redis to have done what was asked of it before this call.

        Raises:
            BackplaneUnavailable: the link was lost meanwhile (see :meth:`fail_flushes`).
        """
        waiter = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(waiter)
        self._wake.set()
        await waiter

    def fail_flushes(self) -> None:
        """Every :meth:`flush` waiting now raises :class:`.BackplaneUnavailable`."""
        waiters = self._flush_waiters + [w for ws in self._pongs.values() for w in ws]
        self._flush_waiters, self._pongs = [], {}
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(BackplaneUnavailable("the Redis link was lost"))

    async def run(self) -> None:
        """Connect, subscribe, report up, then serve until the link fails; always raises."""
        client = Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            retry=Retry(NoBackoff(), 0),  # failures surface here; the backoff is ours
            health_check_interval=0,
        )
        pubsub = client.pubsub()
        try:
            async with asyncio.timeout(self._timeout):
                await client.ping()
                wanted = self._wanted()
                await pubsub.subscribe(*wanted)
                await pubsub.ping(_ALIVE)
                # The subscribe confirmations (and maybe messages), then the pong:
                # subscribed. Bounded by the timeout around it.
                while not self._handle(await pubsub.get_message(timeout=self._timeout)):
                    pass
            self._subscribed = wanted
            self._ping_outstanding = self._ping_wanted = False
            self._on_up()
            self._wake.set()  # send what waited
            await self._serve(client, pubsub)
        finally:
            self._subscribed = set()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()

    async def _serve(self, client: Redis, pubsub: PubSub) -> None:
        """Run the reader and the writer until either fails; raise its error."""
        tasks = [
            asyncio.ensure_future(self._read(pubsub)),
            asyncio.ensure_future(self._write(client, pubsub)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()
        raise BackplaneUnavailable("the Redis link ended")

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=self._ping_interval)
            if message is None:
                if self._ping_outstanding:
                    raise BackplaneUnavailable(
                        f"no answer from Redis within {self._ping_interval:g}s"
                    )
                self._ping_outstanding = self._ping_wanted = True
                self._wake.set()
                continue
            self._ping_outstanding = False
            self._handle(message)

    def _handle(self, message: dict[str, Any] | None) -> bool:
        """Deliver one message from the subscriber connection; True if it was a pong."""
        if message is None:
            return False
        kind = message["type"]
        if kind == "message":
            self._on_message(message["channel"], message["data"])
        elif kind == "pong":
            for waiter in self._pongs.pop(message["data"], ()):
                if not waiter.done():
                    waiter.set_result(None)
            return True
        return False

    async def _write(self, client: Redis, pubsub: PubSub) -> None:
        outbox = self._outbox
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._reconcile(pubsub)
            while outbox:
                batch = outbox.take(_BATCH_MESSAGES, _BATCH_BYTES)
                try:
                    pipe = client.pipeline(transaction=False)
                    for key, data in batch:
                        pipe.publish(key, data)
                    await pipe.execute()
                except BaseException:
                    self._stats.dropped["in-flight"] += len(batch)
                    raise
                self._stats.published += len(batch)
            if self._flush_waiters or self._ping_wanted:
                # Every publish before these flushes is sent; subscriptions made before them
                # are reconciled now; the pong comes after Redis has done both.
                await self._reconcile(pubsub)
                self._tokens += 1
                token = b"flush:%d" % self._tokens if self._flush_waiters else _ALIVE
                self._pongs.setdefault(token, []).extend(self._flush_waiters)
                self._flush_waiters = []
                self._ping_wanted = False
                await pubsub.ping(token)

    async def _reconcile(self, pubsub: PubSub) -> None:
        """Make Redis's subscriptions match the channels with local subscribers."""
        wanted = self._wanted()
        added, removed = wanted - self._subscribed, self._subscribed - wanted
        if added:
            await pubsub.subscribe(*added)
        if removed:
            await pubsub.unsubscribe(*removed)
        self._subscribed = wanted
