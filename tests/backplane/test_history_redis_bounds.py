"""The bounds of channel history in Redis (``RedisChannels`` on a real redis-server):
each one crossed, what remains (read from another node, which sees the same history),
the drops counted by reason on the node that published, and the memory Redis holds
while far more than the bounds is published."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from sockjs_gateway import SockJSOptions, add_endpoint, add_metrics_route
from sockjs_gateway.backplane import history as redis_history
from sockjs_gateway.backplane.history import RedisChannels
from sockjs_gateway.history import Entry, HistoryLimits, Mode, Position, Start
from tests.backplane.servers import RedisServer
from tests.backplane.test_history_redis import in_a_new_epoch, read_until, subscribed
from tests.clients.conftest import start
from tests.server.test_channels import Subscriber
from tests.test_metrics import value

TIMEOUT = 15.0
PREFIX = "sockjs_gateway:history:"

Hubs = Callable[..., Any]


@pytest_asyncio.fixture
async def hubs(redis_server: RedisServer) -> AsyncIterator[Hubs]:
    """Makes started hubs (nodes) on the test's Redis, all with the same limits."""
    made: list[RedisChannels] = []

    async def make(limits: HistoryLimits, count: int = 2) -> list[RedisChannels]:
        for _ in range(count):
            hub = RedisChannels(redis_server.url, limits, timeout=2.0, retry_delay=0.05)
            made.append(hub)
            await hub.start()
            assert hub.up
        return made[-count:]

    try:
        yield make
    finally:
        for hub in made:
            await hub.close()


@pytest_asyncio.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def retained(hub: RedisChannels, channel: str) -> list[tuple[int, str]]:
    replay = await hub.read(channel, Start(Mode.FIRST))
    return [(entry.offset, entry.value) for entry in replay.entries]


async def test_count_bound_keeps_each_channels_newest(hubs: Hubs) -> None:
    a, b = await hubs(HistoryLimits(max_messages=5))
    for number in range(1, 13):
        a.publish("news", str(number))
    await a.flush()
    assert await retained(b, "news") == [(n, str(n)) for n in range(8, 13)]
    assert a.stats.dropped == {"count": 7}
    assert (a.channels, a.messages, a.bytes) == (1, 5, len("89101112"))
    replay = await b.read("news", Start(Mode.OFFSET, 3))
    assert not replay.recovered  # offsets 3 to 7 are gone
    assert [entry.offset for entry in replay.entries] == list(range(8, 13))


async def test_channel_bytes_bound_drops_the_channels_oldest(hubs: Hubs) -> None:
    a, b = await hubs(HistoryLimits(max_channel_bytes=1000))
    for number in range(1, 26):
        a.publish("big", f"{number:03}".ljust(100, "x"))
    a.publish("small", "é")  # two bytes in UTF-8: other channels keep theirs
    await a.flush()
    assert [offset for offset, _ in await retained(b, "big")] == list(range(16, 26))
    assert await retained(b, "small") == [(1, "é")]
    assert a.stats.dropped == {"channel_bytes": 15}
    assert (a.channels, a.messages, a.bytes) == (2, 11, 1002)
    a.publish("big", "y" * 1001)  # larger than the bound by itself: kept by nobody
    await a.flush()
    assert await retained(b, "big") == []
    assert a.stats.dropped == {"channel_bytes": 26}
    b.publish("big", "z")  # the numbering goes on: the channel was not forgotten
    await b.flush()
    assert await retained(a, "big") == [(27, "z")]


async def test_total_bytes_bound_drops_the_oldest_of_any_channel(hubs: Hubs) -> None:
    a, b = await hubs(HistoryLimits(max_total_bytes=1000))
    for number in range(1, 21):  # 2000 bytes over three channels, in this order
        channel = "abc"[number % 3]
        a.publish(channel, f"{number:03}".ljust(100, "x"))
    await a.flush()
    kept = {channel: await retained(b, channel) for channel in "abc"}
    assert sorted(int(text[:3]) for values in kept.values() for _, text in values) == list(
        range(11, 21)
    )
    assert a.stats.dropped == {"total_bytes": 10}
    assert (a.channels, a.messages, a.bytes) == (3, 10, 1000)
    # Published by the other node, the drops are counted there; both see the same history.
    b.publish("d", "w" * 250)
    await b.flush()
    assert b.stats.dropped == {"total_bytes": 3}
    assert (b.channels, b.messages, b.bytes) == (4, 8, 950)
    assert [offset for offset, _ in await retained(a, "a")] == [5, 6]  # 15 and 18 are left
    assert await retained(a, "d") == [(1, "w" * 250)]


async def test_channel_cap_forgets_the_least_recently_published_with_its_epoch(
    hubs: Hubs,
) -> None:
    a, b = await hubs(HistoryLimits(max_channels=3))
    entries: dict[str, list[Entry[str]]] = {}
    b.listen("two", lambda entry: entries.setdefault("two", []).append(entry))
    for channel in ("one", "two", "two", "three", "one"):
        a.publish(channel, channel)
    await a.flush()
    old = (await b.read("two", Start(Mode.FIRST))).entries
    a.publish("four", "four")  # "two" was published to least recently: it goes
    await a.flush()
    assert a.stats.dropped == {"channels": 2}
    assert (a.channels, a.messages, a.bytes) == (3, 4, len("oneonethreefour"))
    gone = await b.read("two", Start.after(Position(old[-1].epoch, old[-1].offset)))
    assert (gone.entries, gone.epoch, gone.recovered) == ([], None, False)
    a.publish("two", "again")  # begins again at 1 in a new epoch, evicting "three"
    await a.flush()
    assert a.stats.dropped == {"channels": 3}
    again = await b.read("two", Start.after(Position(old[-1].epoch, old[-1].offset)))
    assert not again.recovered
    assert [(e.offset, e.value) for e in again.entries] == [(1, "again")]
    assert again.epoch is not None
    assert again.epoch != old[-1].epoch
    assert await retained(b, "three") == []
    async with asyncio.timeout(TIMEOUT):
        while len(entries.get("two", [])) < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    assert [(e.epoch, e.offset) for e in entries["two"]] == [
        (old[0].epoch, 1),
        (old[0].epoch, 2),
        (again.epoch, 1),
    ]


async def test_age_bound_forgets_silent_channels_and_drops_old_messages(
    hubs: Hubs, redis: Redis
) -> None:
    """Sleeps leave 0.7 s to spare each way: a message 1.6 s old is past max_age, one
    0.8 s old is not."""
    [a] = await hubs(HistoryLimits(max_age=1.5), 1)
    a.publish("quiet", "old")
    a.publish("busy", "old")
    await a.flush()
    [first] = (await a.read("busy", Start(Mode.FIRST))).entries
    [gone] = (await a.read("quiet", Start(Mode.FIRST))).entries
    await asyncio.sleep(0.8)
    a.publish("busy", "mid")
    await a.flush()
    await asyncio.sleep(0.8)  # "quiet" was silent for max_age, the first "old" is too old
    a.publish("busy", "new")
    await a.flush()
    assert a.stats.dropped == {"age": 2}
    assert (a.channels, a.messages, a.bytes) == (1, 2, 6)
    busy = await a.read("busy", Start.after(Position(first.epoch, first.offset)))
    assert busy.recovered
    assert busy.epoch == first.epoch
    assert [(e.offset, e.value) for e in busy.entries] == [(2, "mid"), (3, "new")]
    quiet = await a.read("quiet", Start.after(Position(gone.epoch, gone.offset)))
    assert (quiet.epoch, quiet.entries, quiet.recovered) == (None, [], False)
    assert await redis.exists(f"{PREFIX}meta:quiet", f"{PREFIX}stream:quiet") == 0
    assert await redis.zrange(f"{PREFIX}index:last", 0, -1) == [b"busy"]
    a.publish("quiet", "back")  # a new epoch: a reader of the old one is told
    await a.flush()
    back = await a.read("quiet", Start(Mode.FIRST))
    assert back.epoch is not None
    assert back.epoch != gone.epoch
    assert [(e.offset, e.value) for e in back.entries] == [(1, "back")]


async def test_a_script_run_takes_bounded_steps_and_the_node_runs_it_again(
    hubs: Hubs, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_history, "TRIM_STEPS", 10)
    [a] = await hubs(HistoryLimits(max_total_bytes=100), 1)
    for _ in range(50):
        a.publish("small", "s")
    await a.flush()
    runs = await script_runs(redis)
    a.publish("large", "L" * 95)  # 45 small messages must go: 10 per run
    await a.flush()
    assert await script_runs(redis) - runs == 5  # the publish, then 4 runs trimming only
    assert a.stats.dropped == {"total_bytes": 45}
    assert (a.channels, a.messages, a.bytes) == (2, 6, 100)
    assert await retained(a, "small") == [(n, "s") for n in range(46, 51)]
    assert await retained(a, "large") == [(1, "L" * 95)]


async def script_runs(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha")
    )


async def test_redis_memory_stays_bounded_while_publishing_far_past_the_bounds(
    hubs: Hubs, redis: Redis
) -> None:
    limits = HistoryLimits(max_channel_bytes=8 * 1024, max_total_bytes=64 * 1024, max_channels=20)
    [a] = await hubs(limits, 1)
    await a.read("warm", Start())  # the connection pool is made before the baseline
    before = int((await redis.info("memory"))["used_memory"])
    payload = "p" * 1024
    total = 3000  # 3 MiB over 100 channels: 48 times max_total_bytes
    for number in range(total):
        a.publish(f"ch{number % 100}", payload)
        if number % 500 == 499:
            await a.flush()
    await a.flush()
    after = int((await redis.info("memory"))["used_memory"])
    keys = [key async for key in redis.scan_iter(match=f"{PREFIX}*", count=1000)]
    held = 0
    for key in keys:
        held += await redis.memory_usage(key) or 0
    assert a.bytes <= limits.max_total_bytes
    assert a.channels <= limits.max_channels
    assert sum(a.stats.dropped.values()) == total - a.messages
    assert a.stats.dropped["channels"] > 0
    assert len(keys) <= 2 * limits.max_channels + 5  # a meta and a stream each, the index
    # The payload is bounded at 64 KiB; Redis's overhead comes on top, as documented
    # (tens of bytes a message, about 5 KiB a channel).
    assert held < limits.max_total_bytes + 100 * a.messages + 6 * 1024 * a.channels, held
    assert after - before < 1024 * 1024, (before, after)


async def test_a_live_subscriber_of_an_evicted_channel_is_told(redis_server: RedisServer) -> None:
    """An evicted channel begins a new epoch; a plain SockJS subscriber on another node
    is told ``recovered: false`` before its first message."""
    limits = HistoryLimits(max_channels=1)
    nodes: list[tuple[RedisChannels, web.AppRunner, str]] = []
    try:
        for _ in range(2):
            hub = RedisChannels(redis_server.url, limits, timeout=2.0, retry_delay=0.05)
            app = web.Application()
            options = SockJSOptions(allowed_origins=("*",), disconnect_delay=0.5)
            add_endpoint(app, Subscriber(), options=options, channels=hub)
            add_metrics_route(app)
            hub.run_with_app(app)
            runner, url = await start(app)
            nodes.append((hub, runner, url))
        (a, _, a_url), (_b, _, b_url) = nodes
        async with ClientSession(b_url) as to_b, ClientSession(a_url) as to_a:
            live = await subscribed(to_b, "news")
            a.publish("news", "before")
            [before] = await read_until(live, "before")
            a.publish("sports", "evicts news")
            a.publish("news", "after")
            await in_a_new_epoch(live, "news", "after", before)
            assert before["offset"] == 1
            await live.stop()
            async with to_a.get("/metrics") as response:
                samples = {
                    (sample.name, frozenset(sample.labels.items())): sample.value
                    for family in text_string_to_metric_families(await response.text())
                    for sample in family.samples
                }
        label = {"history": "channels:/sockjs"}
        assert value(samples, "sockjs_history_dropped_total", reason="channels", **label) == 2
        assert value(samples, "sockjs_history_appended_total", **label) == 3
        assert value(samples, "sockjs_history_channels", **label) == 1
        assert value(samples, "sockjs_history_messages", **label) == 1
        assert value(samples, "sockjs_history_bytes", **label) == len("after")
    finally:
        for _, runner, _ in nodes:
            await runner.cleanup()
