"""Training once, loading afterwards: the helper every recipe caches its trained models with.

The cache key of a trained model is derived from the recipe dataclass it was trained with (every field) and the
variant asked for (a conditional model, another loss ...), never written by hand: change a field and the model is
trained again, keep them and it loads in a second, whichever chapter (or ``make bench``) trained it first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from cvcourse.cache import cached_model
from cvcourse.config import settings_key
from cvcourse.history import History
from cvcourse.train import Trainer


def require_finished(trainer: Trainer, steps: int) -> None:
    """Raise KeyboardInterrupt if ``fit`` returned early (Ctrl+C) before ``steps``: the caller must not cache the
    half-trained model as a finished one (its checkpoint, if any, is kept to resume from)."""
    if trainer.step < steps:
        raise KeyboardInterrupt(f"training stopped at step {trainer.step} of {steps}; run it again to resume "
                                "from the last checkpoint")


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
