"""Training once, loading afterwards: the helper every recipe caches its trained models with.

The cache key of a trained model is derived from the recipe dataclass it was trained with (every field) and the
variant asked for (a conditional model, another loss ...), never written by hand: change a field and the model is
trained again, keep them and it loads in a second, whichever chapter (or ``make bench``) trained it first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cvcourse.cache import cached_model
from cvcourse.config import settings_key
from cvcourse.data.memory import shuffled_batches
from cvcourse.history import History
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer, supervised_step

CHECKPOINT_EVERY = 250  # fit_classifier's checkpoints


def require_finished(trainer: Trainer, steps: int) -> None:
    """Raise KeyboardInterrupt if ``fit`` returned early (Ctrl+C) before ``steps``: the caller must not cache the
    half-trained model as a finished one (its checkpoint, if any, is kept to resume from)."""
    if trainer.step < steps:
        raise KeyboardInterrupt(f"training stopped at step {trainer.step} of {steps}; run it again to resume "
                                "from the last checkpoint")


def fit_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int, batch_size: int,
                   lr: float, seed: int, device: str | torch.device | None = None, progress: bool = False,
                   checkpoint_dir: str | os.PathLike | None = None) -> nn.Module:
    """Train a classifier on images in memory and int64 labels; returns it in eval mode, where it trained.

    Cross-entropy with AdamW and a one-cycle learning rate (Smith & Topin 2019) through the course's ``Trainer``;
    with a ``checkpoint_dir`` it saves every ``CHECKPOINT_EVERY`` steps and resumes from what it finds there. The
    glyph judge and chapter 10's detectors of generated images are trained with it.
    """
    seed_everything(seed)
    loader = shuffled_batches(images, labels, batch_size=batch_size, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    trainer = Trainer(model, optimizer, supervised_step(F.cross_entropy), device=device, amp=False,
                      schedulers=schedule, checkpoint_dir=checkpoint_dir, checkpoint_every=CHECKPOINT_EVERY,
                      progress=progress, live_plot=False)
    trainer.fit(loader, steps=steps, resume=checkpoint_dir is not None)  # a cached training resumes
    require_finished(trainer, steps)
    return model.eval()


def training_info(trainer: Trainer) -> dict[str, Any]:
    """What the cache keeps beside the weights: the history (as plain lists), the seconds and the steps.

    The seconds are ``trainer.seconds``: those of a run resumed from a checkpoint include the time before it.
    """
    return {"history": trainer.history.state_dict(), "seconds": trainer.seconds, "steps": trainer.step}


def cached_training(name: str, recipe: Any, build: Callable[[], nn.Module],
                    train: Callable[[nn.Module, Path], dict[str, Any]], *, rebuild: bool = False,
                    **variant: Any) -> tuple[nn.Module, dict[str, Any]]:
    """``build()`` the model and load the weights cached for ``recipe`` and ``variant``, or ``train`` it first.

    ``train(model, checkpoint_dir)`` returns the info to keep (see :func:`training_info`); its ``history`` comes
    back as a :class:`cvcourse.history.History`, ready to plot. See :func:`cvcourse.cache.cached_model`.
    """
    model, info = cached_model(name, {**settings_key(recipe), **variant}, build, train, rebuild=rebuild)
    if "history" in info:
        history = History()
        history.load_state_dict(info["history"])
        info = {**info, "history": history}
    return model, info
