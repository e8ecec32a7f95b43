"""Measuring rates and latencies fairly on a small, shared machine.

Subject and baseline run in alternating rounds and each keeps its median round, so a burst of
load from elsewhere hits both sides alike instead of skewing the ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Figure", "compare_rates", "percentile", "rate"]


@dataclass
class Figure:
    """One line of RESULTS.md: a measured figure, its baseline, and the goal on their ratio."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    goal: str
    higher_is_better: bool = True
    goal_ratio: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def met(self) -> bool | None:
        if self.goal_ratio is None:
            return None
        return self.ratio >= self.goal_ratio if self.higher_is_better else (
            self.ratio <= self.goal_ratio
        )


def rate(fn: Callable[[], object], seconds: float = 0.3) -> float:
    """Calls per second of ``fn`` over at least ``seconds`` (batches sized on the fly)."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return batch / elapsed
        batch = max(batch * 2, int(batch * seconds / max(elapsed, 1e-9) * 1.1))


def compare_rates(subject: Callable[[], object], baseline: Callable[[], object], *,
                  rounds: int = 7, seconds: float = 0.3) -> tuple[float, float]:
    """Median rates of ``subject`` and ``baseline`` over alternating rounds."""
    subject(), baseline()
    subject_rates, baseline_rates = [], []
    for _ in range(rounds):
        baseline_rates.append(rate(baseline, seconds))
        subject_rates.append(rate(subject, seconds))
    return statistics.median(subject_rates), statistics.median(baseline_rates)


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
