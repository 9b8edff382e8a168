"""``make bench`` says MET or MISSED only when its runs can tell, and UNDECIDED otherwise."""

from __future__ import annotations

import math

from bench.verdict import MIN_RUNS, judge, median_interval

#: Per-run gateway/floor ratios of twelve xhr-polling runs on a busy 2-core machine: a
#: median near 0.95 whose runs moved between 0.67 and 1.23.
BUSY = [0.98, 0.94, 0.76, 1.09, 1.13, 0.68, 1.23, 1.07, 0.96, 0.94, 0.67, 0.91]


def test_scattered_runs_near_the_bound_are_undecided() -> None:
    verdict = judge(BUSY, 0.95, at_least=True)
    assert verdict.word == "UNDECIDED"
    assert verdict.low is not None
    assert verdict.high is not None
    assert verdict.low < 0.95 < verdict.high
    assert verdict.runs == 12
    assert "12 runs" in verdict.describe(unit="x")


def test_runs_clearly_on_one_side_decide() -> None:
    above = [1.02, 1.05, 0.99, 1.04, 1.01, 1.03]
    assert judge(above, 0.95, at_least=True).word == "MET"
    assert judge(above, 1.10, at_least=True).word == "MISSED"
    # "at most": CPU per delivery, KB per session.
    assert judge(above, 1.10, at_least=False).word == "MET"
    assert judge(above, 0.95, at_least=False).word == "MISSED"


def test_the_same_scatter_decides_once_it_is_far_from_the_bound() -> None:
    assert judge(BUSY, 0.60, at_least=True).word == "MET"
    assert judge(BUSY, 1.40, at_least=True).word == "MISSED"


def test_the_interval_holds_the_median_and_narrows_with_agreeing_runs() -> None:
    low, high = median_interval(BUSY)
    assert low <= sorted(BUSY)[len(BUSY) // 2] <= high
    tight = [0.95 + 0.001 * (i % 3) for i in range(12)]
    t_low, t_high = median_interval(tight)
    assert t_high - t_low < (high - low) / 10
    assert median_interval(BUSY) == (low, high)  # seeded: the same runs, the same words


def test_too_few_runs_are_judged_on_the_median_alone() -> None:
    two = judge([0.97, 0.99][: MIN_RUNS - 1], 0.95, at_least=True)
    assert two.word == "MET"
    assert two.low is None
    assert judge([0.90, 0.97], 0.95, at_least=True).word == "MISSED"  # median 0.935
    one = judge([0.90], 0.95, at_least=True)
    assert one.word == "MISSED"
    assert one.low is None
    assert "no interval" in one.describe()


def test_runs_that_measured_nothing_are_left_out() -> None:
    assert judge([], 1.0, at_least=True).word == "not measured"
    assert judge([math.nan], 1.0, at_least=True).word == "not measured"
    assert judge([1.2, math.nan, 1.3, 1.25], 1.0, at_least=True).runs == 3
