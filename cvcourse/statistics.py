"""Results over several seeds: their mean and spread, and whether two settings differ by more than chance.

A score measured once says little when training is noisy: train with several seeds, report the mean and the sample
standard deviation (``n - 1`` in the denominator). Two settings differ *clearly* when the difference of their means
is larger than ``factor`` times its standard error, ``sqrt(s_a^2 / n_a + s_b^2 / n_b)`` (Welch's t statistic,
Welch 1947, above ``factor``; 2 is roughly a 95% two-sided test with many seeds, and a loose one with three).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _scores(values: Sequence[float], name: str) -> list[float]:
    scores = [float(value) for value in values]
    if len(scores) < 2 or not all(math.isfinite(score) for score in scores):
        raise ValueError(f"{name} needs at least two finite scores (one per seed) to have a spread, got {values!r}.")
    return scores


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation of per-seed scores."""
    scores = _scores(values, "mean_and_spread")
    mean = sum(scores) / len(scores)
    return mean, math.sqrt(sum((score - mean) ** 2 for score in scores) / (len(scores) - 1))


def difference_and_error(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and its standard error ``sqrt(s_a^2 / n_a + s_b^2 / n_b)``."""
    (mean_a, spread_a), (mean_b, spread_b) = mean_and_spread(a), mean_and_spread(b)
    return mean_a - mean_b, math.sqrt(spread_a**2 / len(a) + spread_b**2 / len(b))


def clearly_different(a: Sequence[float], b: Sequence[float], factor: float = 2.0) -> bool:
    """Whether the means of ``a`` and ``b`` differ by more than ``factor`` standard errors of their difference."""
    difference, error = difference_and_error(a, b)
    return abs(difference) > factor * error
