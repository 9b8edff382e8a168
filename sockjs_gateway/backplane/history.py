"""``RedisChannels``: channel history in Redis Streams, so every node sees the same offsets.

The in-memory :class:`~sockjs_gateway.history.Channels` numbers messages per process; two
nodes behind a load balancer would number the same channel differently, and a client that
reconnects to the other node could not resume. Here one Lua script, run atomically by
Redis for every publish, does it all in one place:

* ``HINCRBY`` the channel's offset in a hash that also holds its epoch (a random token
  made when the hash is missing: the first publish ever, after the channel went idle past
  ``max_age`` or was evicted, or after a Redis restart without persistence lost it);
* ``XADD`` the message to the channel's stream, and count it in an index kept for the
  bounds: sorted sets of channels by last publish and by oldest retained message, the
  bytes and messages of each channel, and the totals;
* enforce every bound of :class:`~sockjs_gateway.history.HistoryLimits` exactly, as the
  in-memory store does, dropping the oldest first: ``max_age`` (a channel silent that
  long is forgotten, its keys having expired), ``max_messages`` and ``max_channel_bytes``
  (the channel's oldest), ``max_total_bytes`` (the oldest message of any channel) and
  ``max_channels`` (a new channel evicts the one published to least recently, with its
  numbering: it begins again in a new epoch, so its readers are told). Each drop is
  counted by reason and returned to the publishing node (``stats.dropped``), with the
  totals after the publish (``channels``, ``messages``, ``bytes``). Sizes are the message
  bytes (UTF-8); Redis's overhead per entry comes on top. One run of the script takes at
  most :data:`TRIM_STEPS` steps to do this; the node runs it again, trimming only, for
  what is left (the script itself is in :mod:`.history_script`);
* ``PUBLISH`` it, with its epoch and offset, on one pub/sub channel every node listens to.

A channel's keys expire after ``max_age`` of silence; the index does not (it holds at
most ``max_channels`` names), so the next publish finds and counts what expired.

Because Redis runs the script atomically, pub/sub order is offset order on every node,
every node sees the same history, and a listener's cursor never meets an offset below one
it has seen in the same epoch. A node whose pub/sub connection drops catches up from the
streams when it is back (every channel with local listeners, from the last offset it
delivered), so live subscribers lose nothing to a short outage. Reads (``XRANGE``) serve
replays.

A publish that fails (the connection broke) is tried again for up to ``timeout``
seconds, with the same token: the script skips a token it has already appended for this
node, so a retry whose first attempt did reach Redis (its reply was lost) is not appended
twice. Past ``timeout`` the message is dropped and counted (``stats.dropped
["unavailable"]``), and the outage is logged once: history that is not in Redis would
give different nodes different offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..history import (
    Entry,
    HistoryLimits,
    HistoryStats,
    Listener,
    Mode,
    Replay,
    Start,
    check_channel,
)
from ..history.hub import ListenerHandle, Listeners
from .history_script import INDEX, PUBLISH, REASONS, TRIM_RUNS, TRIM_STEPS

__all__ = ["RedisChannels", "TRIM_STEPS", "TRIM_RUNS"]

log = logging.getLogger("sockjs_gateway.history")

_ERRORS = (RedisError, OSError, TimeoutError)


class RedisChannels:
    """Channels with history in Redis (see the module docstring); the same interface as
    :class:`~sockjs_gateway.history.Channels`, for ``add_endpoint(channels=...)`` and
    ``add_event_stream``. :meth:`start` it before use and :meth:`close` it after
    (:meth:`run_with_app` ties both to an aiohttp app).

    Args:
        url: the Redis server.
        limits: the bounds, all enforced in Redis (see the module docstring).
        prefix: prepended to every key, so that clusters can share one Redis.
        timeout: seconds allowed to connect and for a command's reply.
        retry_delay: seconds between two attempts to get the pub/sub connection back.
    """

    backend = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        limits: HistoryLimits | None = None,
        *,
        prefix: str = "sockjs_gateway:history:",
        timeout: float = 5.0,
        retry_delay: float = 0.2,
    ) -> None:
        self.limits = limits or HistoryLimits()
        self.stats = HistoryStats()
        self._prefix = prefix
        self._bus = f"{prefix}bus"
        self._timeout = timeout
        self._retry_delay = retry_delay
        self._redis = Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=0
        )
        self._script = self._redis.register_script(PUBLISH)
        self._last: dict[str, tuple[str, int]] = {}  # channel -> last (epoch, offset) delivered
        self._listeners: Listeners[Entry[str]] = Listeners(on_empty=self._forget)
        self._queue: deque[tuple[str, str]] = deque()  # publishes, in order
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._up = asyncio.Event()
        self._down_logged = False
        self._node = secrets.token_hex(8)
        self._tokens = 0
        self._published = 0  # publishes done with (sent to Redis, or dropped)
        self._progress = asyncio.Event()
        #: Channels with history, messages and bytes retained over the whole hub (every
        #: node's publishes), as Redis reported them after this node's last publish.
        self.channels = self.messages = self.bytes = 0

    @property
    def up(self) -> bool:
        """True while the pub/sub link to Redis is up (publishes and live delivery work)."""
        return self._up.is_set()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening and publishing; waits up to ``timeout`` for the first link."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._listen_forever(), name="sockjs-history-listen"),
                loop.create_task(self._publish_forever(), name="sockjs-history-publish"),
            ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), self._timeout)

    async def close(self) -> None:
        """Stop, and drop what was not published yet."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.stats.dropped["closed"] += len(self._queue)
        self._published += len(self._queue)
        self._queue.clear()
        self._progress.set()
        await self._redis.aclose()

    def run_with_app(self, app: Any) -> None:
        """Start with ``app`` and close when it stops."""

        async def lifetime(_: Any) -> Any:
            await self.start()
            yield
            await self.close()

        app.cleanup_ctx.append(lifetime)

    # -- the hub interface ---------------------------------------------------------------

    def publish(self, channel: str, text: str) -> None:
        """Queue ``text`` for ``channel``; Redis gives it its offset, then every node's
        listeners get it (this node's too, once Redis has it). Never waits."""
        check_channel(channel)
        self._queue.append((channel, text))
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every message published so far was sent to Redis (or dropped), with
        the trimming it caused.

        Raises:
            TimeoutError: nothing was done for twice ``timeout`` (a publish is retried for
                up to ``timeout``).
        """
        target = self._published + len(self._queue)
        while self._published < target:
            self._progress.clear()
            await asyncio.wait_for(self._progress.wait(), self._timeout * 2)

    def listen(self, channel: str, listener: Listener) -> ListenerHandle[Entry[str]]:
        return self._listeners.add(channel, listener)

    async def read(self, channel: str, start: Start) -> Replay[str]:
        """The retained messages of ``channel`` from ``start``, from Redis.

        Raises:
            redis.exceptions.RedisError, OSError: Redis cannot be reached.
        """
        meta: dict[bytes, bytes] = await self._redis.hgetall(self._key("meta", channel))  # type: ignore[assignment]
        if not meta:
            lost = start.epoch is not None or (start.mode is Mode.OFFSET and start.offset > 1)
            return Replay([], None, 1, not lost)
        epoch = meta[b"epoch"].decode()
        next_offset = int(meta[b"offset"]) + 1
        stream = self._key("stream", channel)
        if start.mode is Mode.NEXT and start.epoch in (None, epoch):
            return Replay([], epoch, next_offset, True)
        raw: list[tuple[bytes, dict[bytes, bytes]]]
        if start.mode is Mode.LAST and start.epoch in (None, epoch):
            raw = await self._redis.xrevrange(stream, "+", "-", count=1)  # type: ignore[assignment]
        else:
            raw = await self._redis.xrange(stream, "-", "+")  # type: ignore[assignment]
        entries = [self._entry(epoch, entry_id, fields) for entry_id, fields in raw]
        first = entries[0].offset if entries else next_offset
        if start.epoch is not None and start.epoch != epoch:
            return Replay(entries, epoch, next_offset, False)
        if start.mode in (Mode.FIRST, Mode.LAST):
            return Replay(entries, epoch, next_offset, True)
        if start.mode is Mode.TIMESTAMP:
            chosen = [e for e in entries if e.time >= start.timestamp]
            complete = first == 1 or (bool(chosen) and chosen[0].offset > first)
            return Replay(chosen, epoch, next_offset, complete)
        if start.offset > next_offset:
            return Replay(entries, epoch, next_offset, False)
        chosen = [e for e in entries if e.offset >= start.offset]
        return Replay(chosen, epoch, next_offset, start.offset >= first)

    # -- internals -----------------------------------------------------------------------

    def _key(self, kind: str, channel: str) -> str:
        return f"{self._prefix}{kind}:{channel}"

    @staticmethod
    def _entry(epoch: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Entry[str]:
        text = fields[b"d"].decode("utf-8", "surrogatepass")
        ms = int(entry_id.split(b"-", 1)[0])
        return Entry(epoch, int(fields[b"o"]), ms / 1000, text, len(fields[b"d"]))

    def _forget(self, channel: str) -> None:
        """``channel`` lost its last listener here: nothing to catch up on for it."""
        self._last.pop(channel, None)

    def _deliver(self, channel: str, entry: Entry[str]) -> None:
        last = self._last.get(channel)
        if last is not None and last[0] == entry.epoch and entry.offset <= last[1]:
            return  # seen already (a catch-up read and pub/sub overlap)
        self._last[channel] = (entry.epoch, entry.offset)
        self._listeners.deliver(channel, entry)

    def _received(self, data: bytes) -> None:
        name, epoch, offset, ms, text = data.split(b"\0", 4)
        channel = name.decode()
        if channel in self._listeners:
            entry = Entry(epoch.decode(), int(offset), int(ms) / 1000, text.decode(), len(text))
            self._deliver(channel, entry)

    async def _catch_up(self) -> None:
        """After the pub/sub link came back: what every listened channel missed."""
        for channel in self._listeners.channels():
            last = self._last.get(channel)
            if last is None:
                continue
            replay = await self.read(channel, Start(Mode.OFFSET, last[1] + 1, epoch=last[0]))
            for entry in replay.entries:
                self._deliver(channel, entry)

    def _went_down(self, error: BaseException) -> None:
        self._up.clear()
        if not self._down_logged:
            self._down_logged = True
            log.warning("history: lost Redis (%s); publishes are dropped until it is back", error)

    async def _listen_forever(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._bus)
                await self._catch_up()
                self._up.set()
                if self._down_logged:
                    self._down_logged = False
                    log.info("history: Redis is back")
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._received(message["data"])
            except _ERRORS as error:
                self._went_down(error)
            finally:
                with contextlib.suppress(*_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(self._retry_delay)

    async def _publish_forever(self) -> None:
        limits = self.limits
        max_age_ms = max(1, int(limits.max_age * 1000))
        index = [self._bus.encode(), *(f"{self._prefix}index:{name}".encode() for name in INDEX)]
        node, prefix = self._node.encode(), self._prefix.encode()
        bounds = " ".join(
            str(number)
            for number in (
                limits.max_messages,
                max_age_ms,
                limits.max_channel_bytes,
                limits.max_total_bytes,
                limits.max_channels,
                TRIM_STEPS,
            )
        ).encode()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                channel, text = self._queue[0]
                self._tokens += 1
                keys: list[str | bytes] = [
                    self._key("meta", channel),
                    self._key("stream", channel),
                    *index,
                ]
                args: list[Any] = [
                    secrets.token_hex(4),
                    text.encode("utf-8", "surrogatepass"),
                    channel,
                    node,
                    self._tokens,
                    bounds,
                    prefix,
                    0,
                ]
                if await self._append(keys, args):
                    await self._trim(keys, args)
                self._queue.popleft()
                self._published += 1
                self._progress.set()

    async def _append(self, keys: list[str | bytes], args: list[Any]) -> bool:
        """Run the script for one publish, retried until ``timeout``; whether it ran out
        of steps."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            try:
                reply: bytes = await self._script(keys=keys, args=args)
            except _ERRORS as error:
                if loop.time() >= deadline:
                    self.stats.dropped["unavailable"] += 1
                    self._went_down(error)
                    return False
                await asyncio.sleep(self._retry_delay)
            else:
                self.stats.appended += 1
                # "0": appended by an attempt whose reply was lost, drops uncounted
                return reply != b"0" and self._count(reply)

    async def _trim(self, keys: list[str | bytes], args: list[Any]) -> None:
        """Run the script trimming only (see :data:`TRIM_STEPS`) until it is done."""
        args = [*args[:-1], 1]
        for _ in range(TRIM_RUNS):
            try:
                reply: bytes = await self._script(keys=keys, args=args)
            except _ERRORS:
                return  # the next publish trims, or reports the outage
            if not self._count(reply):
                return

    def _count(self, reply: bytes) -> bool:
        """Count what one run dropped and the totals it saw; whether it ran out of steps."""
        numbers = [int(number) for number in reply.split()]
        dropped = self.stats.dropped
        for reason, count in zip(REASONS, numbers[1:6], strict=True):
            if count:
                dropped[reason] += count
        self.channels, self.messages, self.bytes = numbers[6:9]
        return bool(numbers[9])
