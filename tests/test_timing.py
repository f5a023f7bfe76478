"""The step timer: warm-up calls left out, the median kept."""

import pytest

from cvcourse import timing


def test_median_seconds_skips_the_warm_up_and_takes_the_median(monkeypatch):
    durations = iter([30.0, 1.0, 2.0, 9.0, 1.0, 2.0])  # a slow first call, then a spread
    clock = [0.0]

    def step():  # the fake clock advances by this call's duration
        clock[0] += next(durations)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    assert timing.median_seconds(step, "cpu", repeats=5, warmup=1) == 2.0  # median of 1, 2, 9, 1, 2; 30 s not counted
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        timing.median_seconds(step, "cpu", repeats=0, warmup=1)
