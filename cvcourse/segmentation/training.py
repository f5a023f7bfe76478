"""Training a segmentation model with the course's loop, and predicting masks.

The step function is the whole of segmentation training: logits for a batch of images, a loss against
the masks (and, for the U-Net paper's weighted loss, the weight maps that travel in the same batch).
:func:`train_segmentation` takes images and masks held in memory, optionally augmented on the fly with
``transforms.v2`` (flips, crops, the U-Net paper's elastic deformation: ``segmentation_transforms``), or any
dataset of ``(image, mask)`` pairs.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision import tv_tensors

from cvcourse.data.memory import shuffled_batches
from cvcourse.device import pick_device
from cvcourse.inference import predict
from cvcourse.models.unet import logits_to_mask
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer

LossFn = Callable[..., torch.Tensor]
OUTPUTS = ("mask", "probabilities", "logits")


def check_image_scale(images: torch.Tensor, name: str = "images") -> None:
    """Raise unless ``images`` are floats on a small scale ([0, 1], or normalised): catches 0..255 values, which
    a model trains on and then fails on every [0, 1] image."""
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float, got {images.dtype}: convert uint8 images with "
                         "v2.ToDtype(torch.float32, scale=True) (or images.float() / 255).")
    if images.numel() and images.abs().max() > 10:
        raise ValueError(f"{name} hold values up to {images.abs().max().item():.4g}: they look like 0..255 pixels. "
                         "Divide by 255 (or use v2.ToDtype(torch.float32, scale=True)) so they lie in [0, 1].")


class SegmentationPairs(Dataset):
    """``(image, mask)`` pairs held in memory, each passed through the v2 ``transforms`` when it is read (image and
    mask together: a flip, crop or elastic deformation moves both the same way)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, transforms: Callable | None = None) -> None:
        if len(images) != len(masks):
            raise ValueError(f"Got {len(images)} images for {len(masks)} masks: pass one mask per image.")
        self.images, self.masks, self.transforms = images, masks, transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = tv_tensors.Image(self.images[index]), tv_tensors.Mask(self.masks[index])
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def segmentation_step(loss_fn: LossFn) -> Callable:
    """``loss_fn(logits, masks)`` for ``(images, masks)`` batches, ``loss_fn(logits, masks, weights)`` for triples."""

    def step(batch: tuple[torch.Tensor, ...], ctx: Trainer) -> torch.Tensor:
        images, *targets = batch
        with ctx.autocast():
            logits = ctx.model(images)
        return loss_fn(logits.float(), *targets)

    return step


def train_segmentation(model: nn.Module, images: torch.Tensor | Dataset, masks: torch.Tensor | None = None, *,
                       loss_fn: LossFn, steps: int, batch_size: int, lr: float,
                       weight_maps: torch.Tensor | None = None, transforms: Callable | None = None,
                       drop_last: bool = True, device: str | torch.device | None = None, seed: int = 0,
                       checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 0,
                       resume: bool = False, **trainer_options) -> Trainer:
    """Train ``model`` for ``steps`` AdamW steps with a one-cycle schedule; returns the Trainer.

    ``images`` (N, C, H, W) and ``masks`` (N, H, W) are tensors, augmented by ``transforms`` (e.g.
    :func:`cvcourse.data.segmentation_transforms`) when given; or ``images`` is a dataset of ``(image, mask)``
    pairs (``masks`` None). Batches drop the last partial one (``drop_last``): with fewer images than
    ``batch_size``, pass ``drop_last=False`` or a smaller batch. ``checkpoint_dir`` and ``resume=True`` continue an
    interrupted run; ``trainer_options`` go to :class:`cvcourse.train.Trainer` (progress, amp, ...).
    """
    seed_everything(seed)
    if isinstance(images, torch.Tensor):
        check_image_scale(images)
        if masks is None or len(images) != len(masks) or (weight_maps is not None and len(weight_maps) != len(masks)):
            raise ValueError(f"Got {len(images)} images for {'no' if masks is None else len(masks)} masks"
                             f"{'' if weight_maps is None else f' and {len(weight_maps)} weight maps'}: "
                             "pass one mask (and weight map) per image.")
    if isinstance(images, torch.Tensor) and transforms is None:
        tensors = (images, masks) if weight_maps is None else (images, masks, weight_maps)
        loader = shuffled_batches(*tensors, batch_size=batch_size, seed=seed, drop_last=drop_last)
    else:
        if weight_maps is not None:
            raise ValueError("weight_maps travel only with in-memory images and masks, without transforms.")
        dataset = SegmentationPairs(images, masks, transforms) if isinstance(images, torch.Tensor) else images
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=drop_last,
                            generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    trainer = Trainer(model, optimizer, segmentation_step(loss_fn), device=device, schedulers=schedule,
                      checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, **trainer_options)
    trainer.fit(loader, steps=steps, resume=resume)
    return trainer


def segment(model: nn.Module, images: torch.Tensor, *, batch_size: int = 64,
            device: str | torch.device | None = None, threshold: float = 0.5, output: str = "mask",
            size: tuple[int, int] | None = None) -> torch.Tensor:
    """The model's prediction for ``images`` (N, C, H, W).

    ``output="mask"``: masks (N, H, W), sigmoid > threshold or argmax over classes; ``"probabilities"``: sigmoid or
    softmax (N, K, H, W); ``"logits"``: the raw outputs. ``size=(height, width)`` resizes the logits (bilinear)
    before anything else, to evaluate against masks of another size.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}.")
    check_image_scale(images)
    device = pick_device(device) if device is not None else next(model.parameters()).device
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=batch_size)
    logits, _ = predict(model, loader, device=device)
    if size is not None:
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
    if output == "logits":
        return logits
    if output == "probabilities":
        return torch.sigmoid(logits) if logits.shape[1] == 1 else logits.softmax(dim=1)
    return logits_to_mask(logits, threshold)
