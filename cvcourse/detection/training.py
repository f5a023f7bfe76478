"""Training the dense detector with the course's loop, and running it over images.

Scenes are drawn once and kept in memory as tv_tensors, and every item goes through a torchvision
``transforms.v2`` pipeline, by default a random left-right flip that moves the boxes with the image (the
cheapest augmentation). The box-aware ``cvcourse.data.detection_transforms`` (zoom, crop, colour) can be
passed as ``transforms`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from cvcourse.data.transforms import collate_detection
from cvcourse.detection.fcos import decode, fcos_loss
from cvcourse.inference import evaluating
from cvcourse.models.detector import DenseDetector
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer

Target = dict[str, torch.Tensor]


def plain_target(target: Target) -> Target:
    """Only what the detector learns from: boxes as a plain tensor, and labels."""
    return {"boxes": target["boxes"].as_subclass(torch.Tensor).float(), "labels": target["labels"]}


class SceneMemory(Dataset):
    """``(image, target)`` pairs held in memory, each passed through ``transforms`` when it is read."""

    def __init__(self, scenes: Sequence, transforms: Callable | None = None) -> None:
        self.items = [scenes[i] for i in range(len(scenes))]
        self.transforms = transforms if transforms is not None else v2.RandomHorizontalFlip()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        image, target = self.transforms(*self.items[index])
        return image.as_subclass(torch.Tensor), plain_target(target)


def detection_step(batch: tuple[torch.Tensor, list[Target]], ctx: Trainer) -> dict[str, torch.Tensor]:
    """One step: the three FCOS losses of a batch, and their sum as the loss to optimise."""
    images, targets = batch
    with ctx.autocast():
        outputs = ctx.model(images)
    outputs = [{key: value.float() for key, value in level.items()} for level in outputs]
    parts = fcos_loss(outputs, targets, ctx.model.strides)
    return {"loss": sum(parts.values()), **parts}


def train_detector(model: DenseDetector, scenes: Sequence, *, steps: int, batch_size: int, lr: float,
                   device: str | torch.device | None = None, seed: int = 0, transforms: Callable | None = None,
                   checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 0, resume: bool = False,
                   **trainer_options) -> Trainer:
    """AdamW with a one-cycle schedule and gradient clipping; ``resume=True`` continues from the latest checkpoint in
    ``checkpoint_dir``; ``trainer_options`` go to the Trainer."""
    seed_everything(seed)
    loader = DataLoader(SceneMemory(scenes, transforms=transforms), batch_size=batch_size, shuffle=True,
                        drop_last=True, collate_fn=collate_detection, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    trainer = Trainer(model, optimizer, detection_step, device=device, schedulers=schedule, grad_clip=10.0,
                      checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, **trainer_options)
    trainer.fit(loader, steps=steps, resume=resume)
    return trainer


def detect(model: DenseDetector, images: torch.Tensor, *, batch_size: int = 32, **decode_options) -> list[Target]:
    """Detections for a batch of images (N, 3, H, W): one dict of boxes, scores and labels per image."""
    device = next(model.parameters()).device
    detections = []
    with evaluating(model):
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size].to(device)
            found = decode(model(chunk), model.strides, image_size=tuple(chunk.shape[-2:]), **decode_options)
            detections += [{key: value.cpu() for key, value in d.items()} for d in found]
    return detections
