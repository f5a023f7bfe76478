"""Repeatable runs: seeding every random generator, and saving and restoring their states.

:func:`seed_everything` starts a run from a known state; :func:`rng_state` and :func:`set_rng_state` carry the
states through a checkpoint, so a resumed run draws the same random numbers as an uninterrupted one.
See https://pytorch.org/docs/stable/notes/randomness.html
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

CUBLAS_DETERMINISTIC_CONFIG = ":4096:8"  # see the "Reproducibility" page of the PyTorch docs


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU) with ``seed``.

    ``deterministic=True`` also asks torch for deterministic kernels (warning where none
    exists), turns off cuDNN autotuning and sets ``CUBLAS_WORKSPACE_CONFIG``, which only takes
    effect if set before the first CUDA matrix multiply. ``deterministic=False`` restores the
    defaults. See https://pytorch.org/docs/stable/notes/randomness.html
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"expected an int seed in [0, 2**32), got {seed!r}; pass e.g. seed=0")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    torch.use_deterministic_algorithms(deterministic, warn_only=deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False
    if deterministic:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC_CONFIG
    elif os.environ.get("CUBLAS_WORKSPACE_CONFIG") == CUBLAS_DETERMINISTIC_CONFIG:
        del os.environ["CUBLAS_WORKSPACE_CONFIG"]


_RNG_STATE_KEYS = ("python", "numpy", "torch", "cuda")


def rng_state() -> dict:
    """Every random generator's state, as plain values that ``torch.load(weights_only=True)`` accepts."""
    name, key, position, has_gauss, cached_gaussian = np.random.get_state()
    cuda_states = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else ()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(key.astype(np.int64)), position, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
        "cuda": cuda_states,
    }


def set_rng_state(state: dict) -> None:
    """Restore a state from :func:`rng_state` (the CUDA part only where CUDA is available)."""
    if not isinstance(state, dict) or set(state) != set(_RNG_STATE_KEYS):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"expected the dict returned by cvcourse.seeding.rng_state() with keys "
            f"{list(_RNG_STATE_KEYS)}, got {got}; pass that dict (e.g. as stored in a checkpoint)"
        )
    version, internal_state, gauss_next = state["python"]
    random.setstate((version, tuple(internal_state), gauss_next))
    name, key, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs restores the devices present here.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
