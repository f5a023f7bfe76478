"""Running a trained model: eval mode without gradients, and predictions over a whole loader."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.device import AmpPolicy, amp_policy, pick_device, to_device


@contextmanager
def evaluating(*models: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside the block; each model's previous mode is restored after."""
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)


def predict(model: nn.Module, loader: Iterable, *, device: str | torch.device | None = None,
            amp: AmpPolicy | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over ``(inputs, targets)`` batches; returns all outputs and targets on the CPU."""
    device = pick_device(device) if device is not None else next(model.parameters()).device
    amp = amp or amp_policy(device, enabled=False)
    outputs, targets = [], []
    with evaluating(model):
        for inputs, target in loader:
            with amp.autocast():
                outputs.append(model(to_device(inputs, device)).float().cpu())
            targets.append(target)
    return torch.cat(outputs), torch.cat(targets)


def class_scores(model: nn.Module, images: torch.Tensor, positive: int = 1, batch_size: int = 500) -> torch.Tensor:
    """The softmax probability of class ``positive`` for each of ``images`` (N,), on the CPU: the score that an ROC
    curve ranks (``cvcourse.metrics.auroc``)."""
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=batch_size)
    logits, _ = predict(model, loader)
    return logits.softmax(dim=1)[:, positive]
