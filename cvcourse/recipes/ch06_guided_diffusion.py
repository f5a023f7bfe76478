"""Chapter 06, guided diffusion: classifier-free guidance and autoguidance.

The chapter reuses chapter 05's recipe (``cfg.ddpm``) three times: class-conditional with dropped labels for
classifier-free guidance, unconditional (chapter 05's own model, loaded from the cache) and narrower and shorter
(``cfg.guide``) as autoguidance's guide; :func:`cvcourse.recipes.ch05_diffusion.trained_ddpm` trains and caches all
three.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config
from cvcourse.recipes import ch05_diffusion as ch05
from cvcourse.recipes.ch05_diffusion import DdpmRecipe

CHAPTER = "06_guided_diffusion"


@dataclass(frozen=True)
class Settings(config.Settings):
    ddpm: DdpmRecipe = DdpmRecipe()  # chapter 05's model; conditional for classifier-free guidance
    drop_label_prob: float = 0.1
    guidance_scales: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    guidance_scale: float = 2.0
    # the small conditional model the chapter trains live, and the scales it is sampled with
    watch_width: int = 16
    watch_steps: int = 1000
    watch_lr: float = 2e-3
    watch_scales: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    watch_sample_count: int = 200
    watch_ddim_steps: int = 20
    # autoguidance's guide: two thirds of the width, a twelfth of the steps
    guide: DdpmRecipe = DdpmRecipe(width=16, steps=500, ema_decay=0.99)
    autoguidance_scales: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    autoguidance_scale: float = 1.0
    sample_count: int = 300
    checkpoint_every: int = 500
    snapshot_count: int = 200
    ddim_steps: int = 50
    ddim_eta: float = 1.0
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "cfg_label_accuracy": ">= 0.95", "cfg_label_accuracy_gain": "> 0", "autoguided_confident_share": ">= 0.90",
        "autoguided_class_coverage": ">= 0.90", "autoguided_fcd_ratio": "< 1", "watch_guidance_gain": ">= 0.1"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(ddpm=ch05.OVERRIDES["smoke"]["ddpm"], guidance_scales=(0.0, 2.0),
                  guide=dict(train_size=2000, width=8, steps=100, lr=1e-3, ema_decay=0.99, snapshot_every=100),
                  autoguidance_scales=(0.0, 1.0), sample_count=32, checkpoint_every=100, snapshot_count=64,
                  watch_width=8, watch_steps=30, watch_sample_count=20, watch_ddim_steps=5, targets={}),
    # not yet run on a GPU: the cpu profile's earlier floors until it has been
    "gpu": dict(ddpm=ch05.OVERRIDES["gpu"]["ddpm"],
                guide=dict(width=32, batch_size=128, steps=2500, lr=2e-4, ema_decay=0.999, snapshot_every=2000),
                sample_count=2000, checkpoint_every=2000, snapshot_count=500,
                targets={"cfg_label_accuracy": ">= 0.95", "cfg_label_accuracy_gain": "> 0",
                         "autoguided_confident_share": ">= 0.40", "autoguided_class_coverage": ">= 0.90",
                         "autoguided_fcd_ratio": "< 1", "watch_guidance_gain": ">= 0.1"}),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 06's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)
