"""Chapter 02, U-Net: the settings and targets, the cells and street-scene splits, the U-Nets, and their training.

Train images come from seed 0 and test images from seed 1, the held-out images chapter 01 also uses.
:func:`train_unet` is the training the notebook shows and the bench times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config
from cvcourse.data import StreetScenes, SyntheticCells, materialize
from cvcourse.models import UNet
from cvcourse.seeding import seed_everything
from cvcourse.segmentation import train_segmentation

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
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "cells_dice": ">= 0.95", "cells_margin_over_otsu": ">= 0.15", "scenes_miou": ">= 0.85",
        "cells_train_s": "<= 180", "scenes_train_s": "<= 300"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(cells_train=128, cells_test=24, cells_depth=2, cells_width=8, cells_steps=80, scenes_train=128,
                  scenes_test=16, scenes_depth=2, scenes_width=8, scenes_steps=80, loss_steps=40, batch_size=8, lr=1e-2,
                  targets={"cells_dice": ">= 0.85", "cells_margin_over_otsu": ">= 0.05", "scenes_miou": ">= 0.30"}),
    "gpu": dict(cells_train=2000, cells_depth=4, cells_width=32, cells_steps=1500, scenes_train=4000, scenes_test=400,
                scenes_depth=4, scenes_width=32, scenes_steps=3000, loss_steps=600, batch_size=32, lr=2e-3,
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


def train_unet(cfg: config.Config, model: UNet, images: torch.Tensor, targets: torch.Tensor,
               loss_fn: Callable[..., torch.Tensor], steps: int, **trainer_options: Any) -> tuple[UNet, float]:
    """Train with the chapter's batch size and learning rate; returns the trained model and the seconds it took."""
    started = time.perf_counter()
    train_segmentation(model, images, targets, loss_fn=loss_fn, steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                       device=cfg.device, **trainer_options)
    return model, time.perf_counter() - started
