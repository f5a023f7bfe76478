"""Chapter 13, denoise, then detect: the settings and targets of :mod:`cvcourse.recipes.denoise_then_detect`.

Chapter 08's detector on degraded test scenes, with and without restoration (a tuned Gaussian filter, a direct
denoiser, diffusion purification), and fine-tuned on degraded images. It uses chapter 08's scenes (``cfg.dataset``:
the shape scenes, or Penn-Fudan pedestrians in the gpu profile) and chapter 08's detector trained on them
(``ch08_object_detection.trained_detector``, cached; trained first if it is not cached).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config
from cvcourse.models.detector import DenseDetector
from cvcourse.recipes import ch08_object_detection as ch08
from cvcourse.recipes.ch08_object_detection import class_names
from cvcourse.recipes.denoise_then_detect import (METHODS, RestorationRecipe, clean_test_scenes,
                                                 degradations, degraded_test_scenes, finetuned_detector,
                                                 noise_schedule, noise_std, restoration_table, restore,
                                                 trained_direct_denoiser, trained_scene_ddpm, tuned_filter_strength)

__all__ = ["CHAPTER", "METHODS", "OVERRIDES", "Settings", "class_names", "clean_test_scenes", "degradations",
           "degraded_test_scenes", "detector", "finetuned_detector", "load", "noise_schedule", "noise_std",
           "restoration_summary", "restoration_table", "restore", "trained_direct_denoiser", "trained_scene_ddpm",
           "tuned_filter_strength"]

CHAPTER = "13_denoise_then_detect"


@dataclass(frozen=True)
class Settings(config.Settings):
    dataset: str = "shapes"  # chapter 08's scenes: "shapes" or "penn_fudan"
    restoration: RestorationRecipe = RestorationRecipe()
    targets: Mapping[str, str] = field(default_factory=lambda: {"best_recovered_share": ">= 0.5"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(restoration=dict(test_size=8, noise_stds=(0.1, 0.5), low_light_gains=(0.06,), train_size=32,
                                   tuning_size=4, denoiser=dict(crops_per_scene=2, width=8, batch_size=8),
                                   diffusion_steps=20, direct_steps=20, purify_steps=2,
                                   finetune=dict(steps=8, batch_size=4), checkpoint_every=10),
                  targets={}),
    # Penn-Fudan pedestrians (every photo of a split: fewer than the sizes below); not yet run on a GPU: no target
    # until it has been
    "gpu": dict(dataset="penn_fudan", targets={},
                restoration=dict(test_size=500, methods=METHODS, noise_stds=(0.1, 0.2, 0.3, 0.4, 0.5),
                                 low_light_gains=(0.3, 0.2, 0.1), train_size=4000, tuning_size=32,
                                 denoiser=dict(crop_size=64, width=64, batch_size=64), diffusion_steps=8000,
                                 direct_steps=4000, finetune=dict(steps=1000, batch_size=32), checkpoint_every=1000)),
}


def detector(cfg: config.Config, *, progress: bool = True) -> DenseDetector:
    """Chapter 08's trained detector in this chapter's profile (cached; trained first if it is not)."""
    return ch08.trained_detector(ch08.settings_for(cfg), progress=progress)[0]


def restoration_summary(cfg: config.Config, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """At the strongest Gaussian noise: the clean images' mAP@0.5 (``ceiling``), each method's (``map_50``), the ``gap``
    between clean and no restoration, the share of it that each method recovers (``recovered``; NaN when the noise
    costs nothing, as for a detector that finds nothing on clean images either), the best method and the methods ranked
    by mAP@0.5."""
    strongest = max(cfg.restoration.noise_stds)
    ceiling = next(row["map_50"] for row in rows if row["kind"] == "clean" and row["method"] == "none")
    map_50 = {row["method"]: row["map_50"] for row in rows if row["kind"] == "gaussian"
              and row["strength"] == strongest}
    gap = ceiling - map_50["none"]
    methods = [method for method in map_50 if method != "none"]
    recovered = {method: (map_50[method] - map_50["none"]) / gap if gap > 0 else float("nan") for method in methods}
    return {"strongest": strongest, "ceiling": ceiling, "map_50": map_50, "gap": gap, "recovered": recovered,
            "best": max(methods, key=map_50.get), "ranking": sorted(map_50, key=map_50.get, reverse=True)}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 13's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)
