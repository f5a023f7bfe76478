"""Chapter 02, U-Net: the settings and targets, the cells and street-scene splits, the U-Nets, and their training.

Train images come from seed 0 and test images from seed 1, the held-out images chapter 01 also uses.
:func:`train_unet` is the training the notebook shows and the bench times; :func:`train_on_real` trains the same
U-Net on Oxford-IIIT Pet or ISBI 2012 where they are present (the gpu profile on Colab).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from torch.utils.data import Dataset, Subset

from cvcourse import config
from cvcourse.data import (ISBIStack, StreetScenes, SyntheticCells, data_root, materialize, oxford_pet,
                           segmentation_transforms)
from cvcourse.models import UNet
from cvcourse.seeding import seed_everything
from cvcourse.segmentation import bce_dice_loss, ce_dice_loss, metrics, segment, train_segmentation

CHAPTER = "02_unet"


@dataclass(frozen=True)
class Settings(config.Settings):
    cells_image_size: int = 64
    cells_train: int = 800
    cells_test: int = 200
    cells_depth: int = 3
    cells_width: int = 16
    cells_steps: int = 300
    scenes_image_size: tuple[int, int] = (64, 128)
    scenes_train: int = 1000
    scenes_test: int = 200
    scenes_depth: int = 3
    scenes_width: int = 16
    scenes_steps: int = 600
    loss_steps: int = 150  # each loss of the loss comparison
    batch_size: int = 16
    lr: float = 3e-3
    real_steps: int = 300  # training on a real dataset, where one is present
    real_image_size: int = 128  # Oxford-IIIT Pet images are resized to this square
    real_crop: int = 128  # ISBI 2012 pages (512 x 512) are trained on random crops of this side
    real_test_size: int = 200  # held-out images a real dataset is measured on
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "cells_dice": ">= 0.95", "cells_margin_over_otsu": ">= 0.15", "scenes_miou": ">= 0.85",
        "cells_train_s": "<= 180", "scenes_train_s": "<= 300"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(cells_train=128, cells_test=24, cells_depth=2, cells_width=8, cells_steps=80, scenes_train=128,
                  scenes_test=16, scenes_depth=2, scenes_width=8, scenes_steps=80, loss_steps=40, batch_size=8, lr=1e-2,
                  real_steps=20, real_image_size=64, real_crop=64, real_test_size=8,
                  targets={"cells_dice": ">= 0.85", "cells_margin_over_otsu": ">= 0.05", "scenes_miou": ">= 0.30"}),
    "gpu": dict(cells_train=2000, cells_depth=4, cells_width=32, cells_steps=1500, scenes_train=4000, scenes_test=400,
                scenes_depth=4, scenes_width=32, scenes_steps=3000, loss_steps=600, batch_size=32, lr=2e-3,
                real_steps=2000, real_crop=256, real_test_size=500,
                targets={"cells_dice": ">= 0.97", "cells_margin_over_otsu": ">= 0.15", "scenes_miou": ">= 0.90"}),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 02's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)


def cell_split(cfg: config.Config, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) and masks (N, H, W) of the train (seed 0) or test (seed 1) cells."""
    size, seed = (cfg.cells_train, 0) if split == "train" else (cfg.cells_test, 1)
    return materialize(SyntheticCells(size, cfg.cells_image_size, seed=seed), target_key="mask")


def scene_split(cfg: config.Config, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, H, W) and class maps (N, H, W) of the train (seed 0) or test (seed 1) street scenes."""
    size, seed = (cfg.scenes_train, 0) if split == "train" else (cfg.scenes_test, 1)
    return materialize(StreetScenes(size, tuple(cfg.scenes_image_size), seed=seed))


def cells_unet(cfg: config.Config, seed: int = 0) -> UNet:
    """The binary U-Net of chapter 02, initialised from ``seed``."""
    seed_everything(seed)
    return UNet(1, 1, depth=cfg.cells_depth, base_width=cfg.cells_width)


def scenes_unet(cfg: config.Config, seed: int = 0) -> UNet:
    """The multiclass U-Net of chapter 02, initialised from ``seed``."""
    seed_everything(seed)
    return UNet(3, StreetScenes.num_classes, depth=cfg.scenes_depth, base_width=cfg.scenes_width)


REAL_DATASETS = ("Oxford-IIIT Pet", "ISBI 2012")


def real_splits(cfg: config.Config, name: str, *, download: bool = False) -> tuple[Dataset, Dataset, int, int]:
    """Training and held-out ``(image, mask)`` datasets of a real dataset, its channels and its classes.

    Oxford-IIIT Pet: its own trainval and test splits (the first ``cfg.real_test_size`` test images), resized to
    ``cfg.real_image_size``; three classes (pet, background, border). ISBI 2012: the first four fifths of the 30
    pages to train on, as random crops of ``cfg.real_crop`` with flips and the paper's elastic deformation, the
    last fifth whole to measure on; two classes (membrane, cell). Raises ``DatasetNotFoundError`` when absent.
    """
    if name == "Oxford-IIIT Pet":
        train = oxford_pet(split="trainval", image_size=cfg.real_image_size, download=download)
        test = oxford_pet(split="test", image_size=cfg.real_image_size, download=download)
        return train, Subset(test, range(min(len(test), cfg.real_test_size))), 3, 3
    if name == "ISBI 2012":
        folder = data_root() / "isbi2012"
        augment = segmentation_transforms(cfg.real_crop)
        train = ISBIStack(folder / "train-volume.tif", folder / "train-labels.tif", transforms=augment)
        whole = ISBIStack(folder / "train-volume.tif", folder / "train-labels.tif")
        first_test = len(whole) - max(1, len(whole) // 5)
        return Subset(train, range(first_test)), Subset(whole, range(first_test, len(whole))), 1, 2
    raise ValueError(f"unknown real dataset {name!r}; choose one of {', '.join(REAL_DATASETS)}.")


def train_on_real(cfg: config.Config, train: Dataset, test: Dataset, channels: int, classes: int,
                  **trainer_options: Any) -> dict[str, Any]:
    """Chapter 02's U-Net (the scenes' depth and width) trained on ``train`` for ``cfg.real_steps`` and measured on
    ``test``: mIoU, per-class IoU and pixel accuracy (two classes: a sigmoid and BCE + Dice; more: softmax and
    cross-entropy + Dice). The last partial batch is kept, since a real dataset can be smaller than a batch."""
    seed_everything(0)
    model = UNet(channels, 1 if classes == 2 else classes, depth=cfg.scenes_depth, base_width=cfg.scenes_width)
    loss_fn = bce_dice_loss if classes == 2 else ce_dice_loss
    model, seconds = train_unet(cfg, model, train, None, loss_fn, cfg.real_steps, drop_last=False, **trainer_options)
    images, masks = (torch.stack([item.as_subclass(torch.Tensor) for item in part]) for part in zip(*test))
    confusion = metrics.confusion_matrix(segment(model, images), masks, classes)
    return {"model": model, "miou": metrics.mean_iou(confusion), "iou": metrics.iou_per_class(confusion).tolist(),
            "pixel_accuracy": metrics.pixel_accuracy(confusion), "train_s": seconds, "train_images": len(train),
            "test_images": len(test)}


def train_unet(cfg: config.Config, model: UNet, images: torch.Tensor | Dataset, targets: torch.Tensor | None,
               loss_fn: Callable[..., torch.Tensor], steps: int, **trainer_options: Any) -> tuple[UNet, float]:
    """Train with the chapter's batch size and learning rate; returns the trained model and the seconds it took."""
    started = time.perf_counter()
    train_segmentation(model, images, targets, loss_fn=loss_fn, steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                       device=cfg.device, **trainer_options)
    return model, time.perf_counter() - started
