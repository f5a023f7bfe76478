"""The foundation's headline experiment: what does the shared training loop cost?

``core.trainer_overhead`` trains the same SmallCNN on the same in-memory SingleShapes batches twice,
once with :class:`cvcourse.train.Trainer` (progress bar, history, NaN guard, RNG bookkeeping) and once
with the hand-written loop a student would write, and reports the ratio of their wall times. The two
are interleaved and each takes its fastest repeat, so load from other processes hurts both alike.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.data import SingleShapes
from cvcourse.data.memory import materialize
from cvcourse.models import SmallCNN
from cvcourse.recipes import ch00_tour
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer, supervised_step


def _setup(cfg: Config, num_classes: int) -> tuple[SmallCNN, torch.optim.Optimizer]:
    seed_everything(0)
    model = SmallCNN(num_classes, width=cfg.overhead.width).to(cfg.device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def hand_written_loop(cfg: Config, loader: DataLoader, num_classes: int) -> float:
    """The loop every tutorial writes; returns its wall time in seconds."""
    model, optimizer = _setup(cfg, num_classes)
    model.train()
    losses, step = [], 0
    started = time.perf_counter()
    while step < cfg.overhead.steps:
        for images, labels in loader:
            images, labels = images.to(cfg.device), labels.to(cfg.device)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if step == cfg.overhead.steps:
                break
    return time.perf_counter() - started


def trainer_loop(cfg: Config, loader: DataLoader, num_classes: int) -> float:
    """The same training through cvcourse.train.Trainer; returns its wall time in seconds."""
    model, optimizer = _setup(cfg, num_classes)
    trainer = Trainer(model, optimizer, supervised_step(F.cross_entropy), device=cfg.device, live_plot=False)
    started = time.perf_counter()
    trainer.fit(loader, steps=cfg.overhead.steps)
    return time.perf_counter() - started


def trainer_overhead(cfg: Config) -> Outcome:
    settings = cfg.overhead
    dataset = SingleShapes(settings.train_size, image_size=settings.image_size, seed=0)
    images, labels = materialize(dataset)
    loader = DataLoader(TensorDataset(images, labels), batch_size=settings.batch_size, shuffle=True)
    hand_written_loop(cfg, loader, dataset.num_classes)  # warm-up: allocator, kernels, caches
    trainer_loop(cfg, loader, dataset.num_classes)
    ratios, hand, trainer = [], [], []
    for repeat in range(settings.repeats):
        runs = {"hand": hand_written_loop, "trainer": trainer_loop}
        order = ["hand", "trainer"] if repeat % 2 == 0 else ["trainer", "hand"]
        seconds = {name: runs[name](cfg, loader, dataset.num_classes) for name in order}
        hand.append(seconds["hand"])
        trainer.append(seconds["trainer"])
        ratios.append(seconds["trainer"] / seconds["hand"])
    return Outcome(value=statistics.median(ratios),
                   details={"hand_s_median": statistics.median(hand), "trainer_s_median": statistics.median(trainer),
                            "pair_ratios": " ".join(f"{r:.3f}" for r in ratios), "steps": settings.steps})


ENTRIES = (
    Entry("core.trainer_overhead", "Trainer / hand-written loop wall time", ch00_tour, "trainer_overhead",
          trainer_overhead),
)
