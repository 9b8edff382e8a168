"""The pure half of the Redis backend: the bounded outage buffer and the backoff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjs_gateway.backplane.outbox import Outbox, backoff_delay


def test_the_oldest_messages_go_first_when_the_count_is_reached() -> None:
    box = Outbox(max_messages=3, max_bytes=1000)
    assert [box.push(b"c", b"%d" % i) for i in range(5)] == [0, 0, 0, 1, 1]
    assert box.take(10, 1000) == [(b"c", b"2"), (b"c", b"3"), (b"c", b"4")]
    assert (box.pushed, box.removed, len(box), box.size) == (5, 5, 0, 0)


def test_the_byte_bound_drops_old_messages_and_refuses_a_huge_one() -> None:
    box = Outbox(max_messages=100, max_bytes=10)
    box.push(b"c", b"1234")  # 5 bytes with its channel
    box.push(b"c", b"5678")
    assert box.push(b"c", b"9") == 1  # 12 > 10: the oldest goes
    assert box.push(b"c", b"x" * 10) == 1  # larger than the whole bound: itself
    assert box.take(100, 100) == [(b"c", b"5678"), (b"c", b"9")]


def test_take_honours_its_batch_limits_but_always_makes_progress() -> None:
    box = Outbox(max_messages=100, max_bytes=100)
    for i in range(5):
        box.push(b"c", b"x" * 9 + b"%d" % i)  # 11 bytes each
    assert len(box.take(2, 1000)) == 2
    assert len(box.take(100, 5)) == 1  # bigger than the byte limit alone: still one
    assert len(box.take(100, 22)) == 2
    assert box.take(100, 100) == []


def test_clear_counts_what_it_drops() -> None:
    box = Outbox(max_messages=10, max_bytes=100)
    box.push(b"c", b"1")
    box.push(b"c", b"2")
    assert box.clear() == 2
    assert (len(box), box.size, box.removed) == (0, 0, 2)


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Outbox(0, 10)


@given(
    st.integers(1, 8),
    st.integers(1, 64),
    st.lists(st.tuples(st.booleans(), st.binary(max_size=20)), max_size=60),
)
def test_bounds_hold_order_is_kept_and_every_message_is_accounted_for(
    max_messages: int, max_bytes: int, steps: list[tuple[bool, bytes]]
) -> None:
    box = Outbox(max_messages, max_bytes)
    taken: list[bytes] = []
    for push, data in steps:
        if push:
            box.push(b"k", data)
        else:
            taken += [d for _, d in box.take(3, 16)]
        assert len(box) <= max_messages
        assert box.size <= max_bytes
        assert box.pushed == box.removed + len(box)
    taken += [d for _, d in box.take(10**6, 10**9)]
    pushed = [data for push, data in steps if push]
    # What came out is a subsequence of what went in, in order.
    remaining = iter(pushed)
    assert all(any(d == p for p in remaining) for d in taken)


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all() -> None:
    full = [backoff_delay(n, 0.1, 5.0, 0.999999) for n in range(1, 10)]
    assert full == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0], rel=1e-5)
    assert backoff_delay(3, 0.1, 5.0, 0.0) == pytest.approx(0.2)
    assert backoff_delay(10**9, 0.1, 5.0, 0.5) == pytest.approx(3.75)  # no overflow
    assert backoff_delay(0, 0.1, 5.0, 0.0) == pytest.approx(0.05)
