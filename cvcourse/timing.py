"""Timing a step the same way everywhere: warm-up calls first, the GPU waited for, the median kept."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


def median_seconds(step: Callable[[], Any], device: str | torch.device, *, repeats: int, warmup: int) -> float:
    """The median wall time of ``step()`` over ``repeats`` calls, after ``warmup`` calls that are not counted.

    The first calls pay for allocation and kernel selection, hence the warm-up; on CUDA each call waits for the
    GPU to finish (kernels run asynchronously), so the time is the step's and not only its launch.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}.")
    synchronize = torch.device(device).type == "cuda"
    times = []
    for _ in range(warmup + repeats):
        started = time.perf_counter()
        step()
        if synchronize:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return sorted(times[warmup:])[repeats // 2]
