"""Where a training run stands in its passes over a loader, and how to replay a pass exactly after a resume.

At the start of every pass the random states are kept (and checkpointed with the run): replaying them makes the
loader shuffle and augment exactly as before, so a run resumed in the middle of a pass sees the same batches as
one that was never interrupted. A loader whose sampler has ``set_epoch`` (a DistributedSampler) is told which pass
it starts, so that every process shuffles alike and each pass differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from cvcourse.checkpoint import CheckpointError
from cvcourse.seeding import rng_state, set_rng_state

EMPTY_LOADER = ("The loader yielded no batch: its dataset is empty, or has fewer items than batch_size and the loader "
                "drops the last partial batch (drop_last=True). Use a smaller batch_size, or keep the last partial "
                "batch (drop_last=False).")


class EmptyLoaderError(ValueError):
    """A loader gave no batch to train on: training could never make a step."""


def loader_length(loader: Iterable) -> int | None:
    """The number of batches in a pass, or None for a loader without a length."""
    return len(loader) if hasattr(loader, "__len__") else None


def total_steps(loader: Iterable, steps: int | None, epochs: int | None) -> int:
    """The steps a run makes: ``steps``, or ``epochs`` passes over ``loader``; a loader with no batch is an error."""
    if (steps is None) == (epochs is None):
        raise ValueError("Pass exactly one of steps= or epochs= to fit().")
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        return steps
    if loader_length(loader) is None:
        raise ValueError("This loader has no length, so epochs= cannot be counted: pass steps= instead.")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    if len(loader) == 0:
        raise EmptyLoaderError(EMPTY_LOADER)
    return epochs * len(loader)


class EpochCursor:
    """The pass over the loader in progress (``epoch``, counted from 0) and how many of its batches were trained on
    (``batch``)."""

    def __init__(self) -> None:
        self.epoch = 0
        self.batch = 0
        self._start_state: dict[str, Any] | None = None
        self._next_loader_state: torch.Tensor | None = None  # the loader's generator where the next pass starts

    def batches(self, loader: Iterable) -> Iterator:
        """An iterator over this pass's batches that skips the ones already trained on."""
        generator = getattr(loader, "generator", None)
        if hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(self.epoch)
        if self.batch == 0:
            if generator is not None and self._next_loader_state is not None:  # a run resumed between two passes
                generator.set_state(self._next_loader_state)
            self._start_state = {"rng": rng_state(),
                                 "loader": generator.get_state() if generator is not None else None}
            return iter(loader)
        if self._start_state is None:
            raise CheckpointError("Cannot resume mid-epoch without the epoch's saved RNG state.")
        now = rng_state()
        set_rng_state(self._start_state["rng"])
        if generator is not None and self._start_state["loader"] is not None:
            generator.set_state(self._start_state["loader"])
        batches = iter(loader)
        for _ in range(self.batch):
            next(batches, None)
        set_rng_state(now)
        return batches

    def end_pass(self, loader: Iterable, batches: Iterator, yielded: int) -> None:
        """Close the pass over ``loader`` whose iterator ``batches`` yielded ``yielded`` batches; a fresh pass that
        yielded none is an error. ``batches`` is run to its end (a sampler draws once more when it runs out), and the
        loader's generator is kept where the next pass starts, for a run resumed from here."""
        if yielded == 0 and self.batch == 0:
            raise EmptyLoaderError(EMPTY_LOADER)
        for _ in batches:
            pass
        generator = getattr(loader, "generator", None)
        self._next_loader_state = generator.get_state() if generator is not None else None
        self.epoch, self.batch = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch, "epoch_start": self._start_state,
                "next_loader_state": self._next_loader_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.batch, self._start_state = state["epoch"], state["batch_in_epoch"], state["epoch_start"]
        self._next_loader_state = state.get("next_loader_state")  # checkpoints of older versions lack it
