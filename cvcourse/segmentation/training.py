"""Training a segmentation model on in-memory tensors with the course's loop, and predicting masks.

The step function is the whole of segmentation training: logits for a batch of images, a loss against
the masks (and, for the U-Net paper's weighted loss, the weight maps that travel in the same batch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.data.memory import shuffled_batches
from cvcourse.device import pick_device
from cvcourse.inference import predict
from cvcourse.models.unet import logits_to_mask
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer

LossFn = Callable[..., torch.Tensor]


def segmentation_step(loss_fn: LossFn) -> Callable:
    """``loss_fn(logits, masks)`` for ``(images, masks)`` batches, ``loss_fn(logits, masks, weights)`` for triples."""

    def step(batch: tuple[torch.Tensor, ...], ctx: Trainer) -> torch.Tensor:
        images, *targets = batch
        with ctx.autocast():
            logits = ctx.model(images)
        return loss_fn(logits.float(), *targets)

    return step


def train_segmentation(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, *, loss_fn: LossFn,
                       steps: int, batch_size: int, lr: float, weight_maps: torch.Tensor | None = None,
                       device: str | torch.device | None = None, seed: int = 0, **trainer_options) -> Trainer:
    """Train ``model`` for ``steps`` AdamW steps with a one-cycle schedule; returns the Trainer.

    ``trainer_options`` go to :class:`cvcourse.train.Trainer` (checkpoint_dir, progress, amp, ...).
    """
    if len(images) != len(masks) or (weight_maps is not None and len(weight_maps) != len(masks)):
        raise ValueError(f"Got {len(images)} images for {len(masks)} masks"
                         f"{'' if weight_maps is None else f' and {len(weight_maps)} weight maps'}: "
                         "pass one mask (and weight map) per image.")
    seed_everything(seed)
    tensors = (images, masks) if weight_maps is None else (images, masks, weight_maps)
    loader = shuffled_batches(*tensors, batch_size=batch_size, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    trainer = Trainer(model, optimizer, segmentation_step(loss_fn), device=device, schedulers=schedule,
                      **trainer_options)
    trainer.fit(loader, steps=steps)
    return trainer


def segment(model: nn.Module, images: torch.Tensor, *, batch_size: int = 64,
            device: str | torch.device | None = None, threshold: float = 0.5) -> torch.Tensor:
    """Masks (N, H, W) predicted for ``images`` (N, C, H, W): sigmoid > threshold, or argmax over classes."""
    device = pick_device(device) if device is not None else next(model.parameters()).device
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=batch_size)
    logits, _ = predict(model, loader, device=device)
    return logits_to_mask(logits, threshold)
