"""Chapter 01, segmentation basics: the settings and targets of thresholds, Otsu and the coarse grid classifier.

The held-out cells and street scenes (seed 1) are the ones chapter 02 tests its U-Nets on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config

CHAPTER = "01_segmentation_basics"


@dataclass(frozen=True)
class Settings(config.Settings):
    cells_image_size: int = 64
    cells_test: int = 200
    scenes_image_size: tuple[int, int] = (64, 128)
    scenes_train: int = 600
    scenes_test: int = 100
    grid: int = 8  # the grid classifier's cell, in pixels
    grid_steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "otsu_clean_dice": ">= 0.9", "uneven_light_dice_drop": ">= 0.1", "oracle_grid_miou": "< 0.95"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(cells_test=24, scenes_train=64, scenes_test=16, grid_steps=30, batch_size=16),
    "gpu": dict(scenes_train=2000, scenes_test=200, grid_steps=1000, batch_size=64),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 01's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)
