"""Appendix, training on several processes: chapter 02's cells U-Net trained by the same Trainer on 1 or N processes.

Run on N processes by torchrun (``python -m torch.distributed.run`` is the same program)::

    torchrun --standalone --nproc_per_node=N -m cvcourse.recipes.appendix_ddp --out DIR [--device cuda]

Each process trains a DistributedDataParallel replica (gloo on CPUs, NCCL with ``--device cuda``, one GPU per
process); rank 0 writes the checkpoints and ``DIR/results.json``, which the notebook reads back with
:func:`read_results`. :func:`train_cells` is the training itself, the same on one process (a notebook's) as on N.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from cvcourse import config
from cvcourse.checkpoint import checkpoint_paths, read_checkpoint
from cvcourse.distributed import finish
from cvcourse.models import UNet
from cvcourse.recipes.ch02_unet import cell_split
from cvcourse.seeding import seed_everything
from cvcourse.segmentation import metrics, segment, segmentation_step
from cvcourse.train import Trainer

CHAPTER = "appendix_ddp"
RESULTS = "results.json"


@dataclass(frozen=True)
class Settings(config.Settings):
    cells_image_size: int = 64  # the cells of chapter 02 (its cell_split reads the three cells_ sizes)
    cells_train: int = 256
    cells_test: int = 100
    cells_depth: int = 3
    cells_width: int = 16
    steps: int = 150
    batch_size: int = 16  # the global batch: on N processes each trains on batch_size / N images a step
    lr: float = 3e-3
    processes: int = 2  # what the notebook launches
    compared_steps: int = 10  # the first steps, whose losses 1 and N processes must agree on to float precision
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "early_loss_difference": "<= 1e-4", "dice_difference": "<= 0.03", "cells_dice": ">= 0.9"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(cells_train=64, cells_test=24, cells_depth=2, cells_width=8, steps=30, batch_size=8, lr=1e-2,
                  targets={"early_loss_difference": "<= 1e-4", "dice_difference": "<= 0.03", "cells_dice": ">= 0.7"}),
    "gpu": dict(),  # the notebook trains on CPU processes in every profile; on GPUs, run the script with --device cuda
}


def load(profile: str | None = None, device: str | torch.device | None = "cpu") -> config.Config:
    """The appendix's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``: the
    CPU unless asked otherwise, as the notebook's processes are CPU processes, which every machine has."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)


def cells_unet(cfg: config.Config, seed: int = 0) -> UNet:
    """Chapter 02's cells U-Net with group norm instead of batch norm, initialised from ``seed``. Batch norm would
    normalise each process's share of the batch by that share's statistics; group norm normalises each image by its
    own, so 1 process and N compute the same."""
    seed_everything(seed)
    return UNet(1, 1, depth=cfg.cells_depth, base_width=cfg.cells_width, norm="group")


def pixel_bce(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over every pixel of the batch. The mean of N equal shares' means is the whole
    batch's mean, so N processes train as one does; chapter 02's soft Dice sums over the batch, and does not split
    so."""
    return F.binary_cross_entropy_with_logits(logits[:, 0], masks.to(logits.dtype))


def global_batches(images: torch.Tensor, masks: torch.Tensor, batch_size: int, seed: int = 0) -> DataLoader:
    """Batches of ``batch_size`` in the order a DistributedSampler deals to a single process, each pass shuffled
    anew. On N processes the Trainer deals every batch out over them, so they train on the same images as one does."""
    dataset = TensorDataset(images, masks)
    return DataLoader(dataset, batch_size=batch_size, drop_last=True,
                      sampler=DistributedSampler(dataset, num_replicas=1, rank=0, seed=seed))


class StepClock:
    """A Trainer callback that notes when each step ends: :meth:`seconds_per_step` leaves start-up costs out."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, trainer: Trainer) -> None:
        self.ends.append(time.perf_counter())

    def seconds_per_step(self) -> float:
        """The median time between two steps' ends (NaN before two steps)."""
        gaps = [later - earlier for earlier, later in zip(self.ends, self.ends[1:])]
        return statistics.median(gaps) if gaps else float("nan")


def train_cells(cfg: config.Config, checkpoint_dir: str | Path | None = None, *, resume: bool = False,
                progress: bool = True) -> tuple[Trainer, StepClock]:
    """Train :func:`cells_unet` on chapter 02's training cells with its AdamW and one-cycle schedule, on this process
    or, under torchrun, on every process it started; returns the Trainer and the clock of its steps."""
    images, masks = cell_split(cfg, "train")
    model = cells_unet(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.steps)
    clock = StepClock()
    trainer = Trainer(model, optimizer, segmentation_step(pixel_bce), device=cfg.device, schedulers=schedule,
                      checkpoint_dir=checkpoint_dir, callbacks=[clock], progress=progress, live_plot=False)
    trainer.fit(global_batches(images, masks, cfg.batch_size), steps=cfg.steps, resume=resume)
    return trainer, clock


def run_summary(cfg: config.Config, trainer: Trainer, clock: StepClock) -> dict[str, Any]:
    """What a run reports: its processes, backend and device, steps, seconds per step and logged losses."""
    group = trainer.replicas.group
    return {"profile": cfg.profile, "processes": trainer.replicas.world_size,
            "backend": torch.distributed.get_backend(group) if group is not None else "none (one process)",
            "device": str(trainer.device), "threads_per_process": torch.get_num_threads(), "steps": trainer.step,
            "global_batch": cfg.batch_size, "seconds_per_step": clock.seconds_per_step(),
            "losses": trainer.history.series("loss")[1]}


def read_results(out: str | Path) -> dict[str, Any]:
    """The summary a run of :func:`main` wrote to ``out``."""
    path = Path(out) / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"No {RESULTS} in {out}: the run did not finish. Run its torchrun command again and "
                                "read the error it printed.")
    return json.loads(path.read_text())


def trained_unet(cfg: config.Config, out: str | Path) -> UNet:
    """The U-Net of the last checkpoint a run of :func:`main` wrote to ``out``."""
    model = cells_unet(cfg)
    model.load_state_dict(read_checkpoint(checkpoint_paths(Path(out) / "checkpoints")[-1])["models"]["model"])
    return model


def weight_difference(model: torch.nn.Module, other: torch.nn.Module) -> float:
    """The largest difference between two models' corresponding weights."""
    return max((a.detach().cpu() - b.detach().cpu()).abs().max().item()
               for a, b in zip(model.parameters(), other.parameters(), strict=True))


def held_out_dice(cfg: config.Config, model: torch.nn.Module) -> float:
    """Mean Dice of ``model``'s masks on chapter 02's held-out cells."""
    images, masks = cell_split(cfg, "test")
    return metrics.dice(segment(model, images, device="cpu"), masks).mean().item()


def main(argv: Sequence[str] | None = None) -> int:
    """Train on this process, or on each process torchrun started, and write ``--out``/results.json from rank 0."""
    parser = argparse.ArgumentParser(prog="torchrun --standalone --nproc_per_node=N -m cvcourse.recipes.appendix_ddp",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the checkpoints and results.json")
    parser.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $CVCOURSE_PROFILE)")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    args = parser.parse_args(argv)
    cfg = load(args.profile, args.device)
    (args.out / RESULTS).unlink(missing_ok=True)  # a run that fails leaves no older run's results to be read
    trainer, clock = train_cells(cfg, args.out / "checkpoints", resume=args.resume)
    finished = trainer.step == cfg.steps  # else Ctrl+C stopped it, and its checkpoint waits for --resume
    if trainer.replicas.is_main and finished:
        (args.out / RESULTS).write_text(json.dumps(run_summary(cfg, trainer, clock), indent=1))
    elif trainer.replicas.is_main:
        print(f"Stopped at step {trainer.step} of {cfg.steps}: run the same command with --resume (on any number of "
              "processes) to finish.")
    finish()
    return 0 if finished else 130


if __name__ == "__main__":
    raise SystemExit(main())
