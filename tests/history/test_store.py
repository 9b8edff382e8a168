"""The history store with plain calls: offsets, epochs, every bound and every start."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from sockjs_gateway.history import (
    Cursor,
    HistoryLimits,
    HistoryStore,
    Mode,
    Position,
    Start,
    parse_event_id,
    parse_stream_offset,
)


def make(**limits: float) -> HistoryStore[str]:
    counter = itertools.count(1)
    return HistoryStore(HistoryLimits(**limits), new_epoch=lambda: f"e{next(counter)}")  # type: ignore[arg-type]


def fill(store: HistoryStore[str], channel: str, count: int, now: float = 0.0) -> None:
    for i in range(count):
        store.append(channel, f"m{i + 1}", 2, now)


def offsets(store: HistoryStore[str], channel: str, start: Start, now: float = 0.0) -> list[int]:
    return [e.offset for e in store.read(channel, start, now).entries]


def test_offsets_increase_per_channel_within_one_epoch() -> None:
    store = make()
    a = [store.append("a", "x", 1, 0.0) for _ in range(3)]
    b = store.append("b", "y", 1, 0.0)
    assert [e.offset for e in a] == [1, 2, 3]
    assert b.offset == 1
    assert {e.epoch for e in a} == {"e1"}
    assert b.epoch == "e2"


def test_two_stores_have_different_epochs() -> None:
    first, second = HistoryStore[str](), HistoryStore[str]()
    assert first.append("c", "x", 1, 0).epoch != second.append("c", "x", 1, 0).epoch


def test_count_bound_drops_the_oldest_and_counts_it() -> None:
    store = make(max_messages=3)
    fill(store, "c", 5)
    assert offsets(store, "c", Start(Mode.FIRST)) == [3, 4, 5]
    assert store.stats.dropped["count"] == 2
    assert store.messages == 3


def test_age_bound_hides_and_drops_old_messages() -> None:
    store = make(max_age=10)
    store.append("c", "old", 1, 100.0)
    store.append("c", "new", 1, 105.0)
    assert offsets(store, "c", Start(Mode.FIRST), now=112.0) == [2]
    assert store.stats.dropped["age"] == 1
    replay = store.read("c", Start(Mode.OFFSET, 1, epoch="e1"), 112.0)
    assert not replay.recovered
    assert [e.offset for e in replay.entries] == [2]


def test_channel_bytes_bound() -> None:
    store = make(max_channel_bytes=10)
    for _ in range(4):
        store.append("c", "abcd", 4, 0.0)
    assert offsets(store, "c", Start(Mode.FIRST)) == [3, 4]
    assert store.stats.dropped["channel_bytes"] == 2


def test_total_bytes_bound_drops_the_oldest_of_any_channel() -> None:
    store = make(max_total_bytes=10)
    store.append("a", "x", 4, 0.0)
    store.append("b", "x", 4, 1.0)
    store.append("a", "x", 4, 2.0)
    assert offsets(store, "a", Start(Mode.FIRST)) == [2]
    assert offsets(store, "b", Start(Mode.FIRST)) == [1]
    assert store.bytes == 8
    assert store.stats.dropped["total_bytes"] == 1


def test_channel_cap_evicts_the_least_recent_channel_and_its_epoch() -> None:
    store = make(max_channels=2)
    fill(store, "a", 2)
    fill(store, "b", 1)
    store.append("a", "again", 1, 0.0)  # a is now the most recent
    fill(store, "c", 1)  # evicts b
    assert store.channels == 2
    assert store.epoch("b") is None
    assert store.stats.dropped["channels"] == 1
    again = store.append("b", "back", 1, 0.0)  # evicts a, b begins again
    assert (again.epoch, again.offset) == ("e4", 1)
    replay = store.read("b", Start(Mode.OFFSET, 2, epoch="e2"), 0.0)
    assert not replay.recovered
    assert replay.epoch == "e4"


def test_stale_timeline_rows_are_swept() -> None:
    store = make(max_messages=2)
    fill(store, "c", 10_000)
    assert store.messages == 2
    assert len(store._timeline) <= 2 * store.messages + 64


def test_an_oversized_message_is_returned_but_not_kept() -> None:
    store = make(max_channel_bytes=3)
    entry = store.append("c", "big", 10, 0.0)
    assert entry.offset == 1
    assert store.messages == 0
    assert store.bytes == 0
    assert store.read("c", Start(Mode.OFFSET, 1, epoch="e1"), 0.0).recovered is False


@pytest.mark.parametrize(
    ("start", "expected", "recovered"),
    [
        (Start(Mode.FIRST), [3, 4, 5], True),
        (Start(Mode.LAST), [5], True),
        (Start(Mode.NEXT), [], True),
        (Start(Mode.OFFSET, 4, epoch="e1"), [4, 5], True),
        (Start(Mode.OFFSET, 3), [3, 4, 5], True),
        (Start(Mode.OFFSET, 6, epoch="e1"), [], True),  # caught up
        (Start(Mode.OFFSET, 2, epoch="e1"), [3, 4, 5], False),  # older than the history
        (Start(Mode.OFFSET, 9, epoch="e1"), [3, 4, 5], False),  # beyond it: not this history
        (Start(Mode.OFFSET, 4, epoch="other"), [3, 4, 5], False),  # another epoch
        (Start(Mode.TIMESTAMP, timestamp=14.0), [4, 5], True),
        (Start(Mode.TIMESTAMP, timestamp=11.5), [3, 4, 5], False),  # 12 was dropped
    ],
)
def test_read_from_every_kind_of_start(start: Start, expected: list[int], recovered: bool) -> None:
    store = make(max_messages=3)
    for i in range(5):
        store.append("c", f"m{i + 1}", 1, 11.0 + i)
    replay = store.read("c", start, 15.0)
    assert [e.offset for e in replay.entries] == expected
    assert (replay.recovered, replay.next_offset, replay.epoch) == (recovered, 6, "e1")


def test_read_of_an_unknown_channel() -> None:
    store = make()
    assert store.read("none", Start(Mode.FIRST), 0.0).recovered
    lost = store.read("none", Start(Mode.OFFSET, 5, epoch="e9"), 0.0)
    assert (lost.recovered, lost.epoch, lost.next_offset) == (False, None, 1)


def test_parse_stream_offset() -> None:
    assert parse_stream_offset("first") == Start(Mode.FIRST)
    assert parse_stream_offset(" next ") == Start(Mode.NEXT)
    assert parse_stream_offset("offset=42", "ab12") == Start(Mode.OFFSET, 42, epoch="ab12")
    assert parse_stream_offset("timestamp=1700000000.5").timestamp == 1700000000.5
    for bad in ("", "offset=", "offset=-1", "offset=x", "later", "timestamp=soon"):
        with pytest.raises(ValueError, match="use first, last, next"):
            parse_stream_offset(bad)
    with pytest.raises(ValueError, match="invalid epoch"):
        parse_stream_offset("first", "bad epoch!")


def test_event_ids_round_trip() -> None:
    position = Position("ab12cd34", 17)
    assert parse_event_id(position.event_id()) == position
    assert Start.after(position) == Start(Mode.OFFSET, 18, epoch="ab12cd34")
    for bad in ("", "17", "-17", "ab-", "ab-x", "a b-1"):
        assert parse_event_id(bad) is None


def test_cursor_admits_each_message_once_and_a_new_epoch_always() -> None:
    cursor = Cursor("e1", 4)
    assert not cursor.admit("e1", 3)
    assert cursor.admit("e1", 4)
    assert not cursor.admit("e1", 4)
    assert cursor.admit("e2", 1)  # the history was lost: numbering began again
    assert cursor.reset
    assert cursor.admit("e2", 2)
    assert not cursor.reset
    assert Cursor(None, 0).admit("e1", 1)


def test_history_modules_import_neither_asyncio_nor_aiohttp_nor_the_server() -> None:
    """The core ring: the package root still imports aiohttp, so the modules are read."""
    import sockjs_gateway.history as package

    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = ["." * node.level + (node.module or "")]
            else:
                continue
            for name in names:
                assert not name.startswith(("asyncio", "aiohttp", "..")), (path.name, name)
