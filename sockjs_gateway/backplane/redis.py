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

Connections. A *link* is one task holding two connections: commands (``PUBLISH``,
pipelined in batches) and subscriber (``SUBSCRIBE``, ``PING``). One writer task per link
sends everything, in order; one reader task delivers what arrives. A subscriber
connection silent for ``ping_interval`` is pinged; no answer within another
``ping_interval`` ends the link, which is how a silent network failure is noticed. When
either connection fails both are closed, the state goes ``DOWN`` (logged once, not per
retry), and a ``loop.call_later`` handle starts the next link after a capped exponential
backoff with jitter (:func:`.outbox.backoff_delay`). A link that comes up subscribes every
wanted channel before it reports ``UP`` (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from yarl import URL

from ..metrics import BackplaneStats
from .base import BackplaneState, BackplaneUnavailable, Deliver, Subscription
from .fanout import Fanout
from .outbox import Outbox, backoff_delay

__all__ = ["RedisBackplane"]

log = logging.getLogger("sockjs_gateway.backplane")

#: Messages and bytes of one pipelined batch of PUBLISH commands.
_BATCH_MESSAGES = 512
_BATCH_BYTES = 1024 * 1024
_ALIVE = b"alive"  # PING token of the liveness check
_EXPECTED = (RedisError, OSError, TimeoutError, BackplaneUnavailable)


class RedisBackplane:
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
        self._url = url
        self._where = str(URL(url).with_user(None))  # for logs: no password
        self._node_id = node_id
        self._prefix = prefix
        self._skip = len(prefix.encode())
        self._tag = node_id.encode() + b"\0"
        self._control = f"{prefix}node:{node_id}".encode()  # keeps the subscriber subscribed
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._backoff = (backoff_initial, backoff_max)
        self._startup_wait = startup_wait
        self.stats = BackplaneStats()
        self._fanout = Fanout(self.stats, on_change=self._wake_writer)
        self._outbox = Outbox(max_pending, max_pending_bytes)
        self._state = BackplaneState.CONNECTING
        self._ever_up = False
        self._failures = 0  # consecutive, for the backoff
        self._task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._up_event = asyncio.Event()
        self._subscribed: set[bytes] = set()
        self._ping_wanted = False
        self._ping_outstanding = False
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._pongs: dict[bytes, list[asyncio.Future[None]]] = {}
        self._tokens = 0

    # -- the Backplane interface ---------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def state(self) -> BackplaneState:
        return self._state

    @property
    def up(self) -> bool:
        return self._state is BackplaneState.UP

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
        self._wake.set()

    def subscribe(self, channel: str, deliver: Deliver) -> Subscription:
        return self._fanout.add(channel, deliver)

    async def start(self) -> None:
        if self._state is BackplaneState.CLOSED:
            raise RuntimeError("the backplane is closed")
        if self._task is None and self._retry is None:
            self._spawn()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up_event.wait(), self._startup_wait)

    async def flush(self) -> None:
        if self._state is not BackplaneState.UP:
            raise BackplaneUnavailable(f"the backplane is {self._state.value}")
        waiter = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(waiter)
        self._wake.set()
        await waiter

    async def close(self) -> None:
        if self._state is BackplaneState.CLOSED:
            return
        self._state = BackplaneState.CLOSED
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=self._timeout)
        self.stats.dropped["closed"] += self._outbox.clear()
        self._fail_flushes()
        self._fanout.clear()
        log.info("backplane: node %s closed its Redis link", self._node_id)

    # -- link lifecycle ------------------------------------------------------------------

    def _spawn(self) -> None:
        self._retry = None
        if self._state is BackplaneState.CLOSED:
            return
        task = asyncio.get_running_loop().create_task(self._link(), name="sockjs-backplane")
        task.add_done_callback(self._link_ended)
        self._task = task

    def _went_up(self) -> None:
        self._state = BackplaneState.UP
        self._failures = 0
        if self._ever_up:
            self.stats.reconnects += 1
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
        self._wake.set()  # send what waited

    def _link_ended(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled() or self._state is BackplaneState.CLOSED:
            return
        error = task.exception()
        self.stats.failures += 1
        self._failures += 1
        self._up_event.clear()
        self._fail_flushes()
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

    def _fail_flushes(self) -> None:
        waiters = self._flush_waiters + [w for ws in self._pongs.values() for w in ws]
        self._flush_waiters, self._pongs = [], {}
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(BackplaneUnavailable("the Redis link was lost"))

    def _wake_writer(self) -> None:
        self._wake.set()

    def _wanted(self) -> set[bytes]:
        return {(self._prefix + c).encode() for c in self._fanout.channels()} | {self._control}

    # -- one link ------------------------------------------------------------------------

    async def _link(self) -> None:
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
            self._went_up()
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
            data: bytes = message["data"]
            if data.startswith(self._tag):
                return False  # ours: delivered locally when published
            _, nul, payload = data.partition(b"\0")
            if nul:
                self.stats.received += 1
                channel: bytes = message["channel"]
                self._fanout.deliver(channel[self._skip :].decode(), payload)
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
                    self.stats.dropped["in-flight"] += len(batch)
                    raise
                self.stats.published += len(batch)
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


def _describe(error: BaseException | None) -> str:
    text = str(error) if error is not None else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
