"""Where a training run stands in its passes over a loader, and how to replay a pass exactly after a resume.

At the start of every pass the random states are kept (and checkpointed with the run): replaying them makes the
loader shuffle and augment exactly as before, so a run resumed in the middle of a pass sees the same batches as
one that was never interrupted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from cvcourse.checkpoint import CheckpointError
from cvcourse.seeding import rng_state, set_rng_state

EMPTY_LOADER = ("The loader yielded no batch: its dataset is empty, or has fewer items than batch_size and the loader "
                "drops the last partial batch (drop_last=True). Use a smaller batch_size, or keep the last partial "
                "batch (drop_last=False).")


class EmptyLoaderError(ValueError):
    """A loader gave no batch to train on: training could never make a step."""


class EpochCursor:
    """The pass over the loader in progress (``epoch``, counted from 0) and how many of its batches were trained on
    (``batch``)."""

    def __init__(self) -> None:
        self.epoch = 0
        self.batch = 0
        self._start_state: dict[str, Any] | None = None

    def batches(self, loader: Iterable) -> Iterator:
        """An iterator over this pass's batches that skips the ones already trained on."""
        generator = getattr(loader, "generator", None)
        if self.batch == 0:
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

    def end_pass(self, yielded: int) -> None:
        """Close the pass that just yielded ``yielded`` batches; a fresh pass that yielded none is an error."""
        if yielded == 0 and self.batch == 0:
            raise EmptyLoaderError(EMPTY_LOADER)
        self.epoch, self.batch = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch, "epoch_start": self._start_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.batch, self._start_state = state["epoch"], state["batch_in_epoch"], state["epoch_start"]
