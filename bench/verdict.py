"""Whether a run of ``make bench`` met a performance target, given how much its figures moved.

A target is judged on the median of per-run figures (a ratio taken within each run, or a
server's own value). On a shared machine one run's ratio can move by a third from the
next, so a median of a few runs near the bound says little. Each verdict therefore comes
with a 90% interval for that median (a percentile bootstrap over the runs, with a fixed
seed so the same runs always give the same words) and says:

- ``MET`` when the whole interval is on the right side of the bound;
- ``MISSED`` when the whole interval is on the wrong side;
- ``UNDECIDED`` when the bound lies inside it: this machine cannot tell, so more runs (or a
  quieter machine, or ``bench.instructions``) must.

With fewer than :data:`MIN_RUNS` figures there is no interval, and the median alone
decides (``make bench QUICK=1`` makes one run).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MIN_RUNS", "Verdict", "median_interval", "judge"]

#: The fewest figures for which an interval is given.
MIN_RUNS = 3
#: Resamples behind an interval, and the share of them it leaves out on each side.
_DRAWS = 2000
_TAIL = 0.05


@dataclass(frozen=True)
class Verdict:
    word: str  #: MET, MISSED, UNDECIDED, or "not measured"
    median: float | None
    low: float | None = None  #: the interval, when there were MIN_RUNS figures or more
    high: float | None = None
    runs: int = 0

    def describe(self, spec: str = ".2f", unit: str = "") -> str:
        """The median, its interval and the number of runs, e.g. ``0.93x (0.88-0.97, 12
        runs)``."""
        if self.median is None:
            return "-"
        text = f"{self.median:{spec}}{unit}"
        if self.low is None or self.high is None:
            return f"{text} ({self.runs} run{'s' if self.runs != 1 else ''}, no interval)"
        return f"{text} ({self.low:{spec}}-{self.high:{spec}}, {self.runs} runs)"


def median_interval(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """A 90% percentile-bootstrap interval for the median of ``values``."""
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(_DRAWS))
    return medians[int(_TAIL * _DRAWS)], medians[int((1 - _TAIL) * _DRAWS) - 1]


def judge(values: Sequence[float], bound: float, *, at_least: bool) -> Verdict:
    """Judge ``median(values) >= bound`` (``at_least``) or ``<= bound``, as above."""
    values = [v for v in values if v == v]  # NaN: a run that measured nothing
    if not values:
        return Verdict("not measured", None)
    median = statistics.median(values)
    n = len(values)

    def holds(v: float) -> bool:
        return v >= bound if at_least else v <= bound

    if n < MIN_RUNS:
        return Verdict("MET" if holds(median) else "MISSED", median, runs=n)
    low, high = median_interval(values)
    if holds(low) and holds(high):
        word = "MET"
    elif not holds(low) and not holds(high):
        word = "MISSED"
    else:
        word = "UNDECIDED"
    return Verdict(word, median, low, high, n)
