"""Chapter 13, diffusion for object detection: the settings and targets of its two experiments.

Part 1 (:mod:`cvcourse.recipes.denoise_then_detect`): chapter 08's detector on degraded test scenes, with and without
restoration (a classical filter, a direct denoiser, diffusion purification) and fine-tuned on degraded images.
Part 2 (:mod:`cvcourse.recipes.boxes_from_noise`): DiffusionDet at the course's scale, boxes denoised from noise on
chapter 08's backbone, with its ablations and a head with learned proposals. Both use chapter 08's scenes and its
detector (``ch08_object_detection.trained_detector``, cached; trained first if it is not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config
from cvcourse.models.detector import DenseDetector
from cvcourse.recipes import ch08_object_detection as ch08
from cvcourse.recipes.boxes_from_noise import (CLASS_NAMES, BoxDiffusionRecipe, ablation_table, boxes_and_steps_table,
                                              build_box_denoiser, dense_comparison, detector_settings, evaluate,
                                              schedule, test_scenes, train_batch, trained_box_denoiser)
from cvcourse.recipes.denoise_then_detect import (METHODS, RestorationRecipe, clean_test_scenes, degradations,
                                                 degraded_test_scenes, finetuned_detector, noise_schedule, noise_std,
                                                 restoration_table, restore, trained_direct_denoiser,
                                                 trained_scene_ddpm, tuned_filter_strength)

__all__ = ["CHAPTER", "CLASS_NAMES", "METHODS", "OVERRIDES", "Settings", "ablation_table", "boxes_and_steps_table",
           "boxes_summary", "build_box_denoiser", "clean_test_scenes", "degradations", "degraded_test_scenes",
           "dense_comparison", "detector", "detector_settings", "evaluate", "finetuned_detector", "load",
           "noise_schedule", "noise_std", "restoration_summary", "restoration_table", "restore", "schedule",
           "test_scenes", "train_batch", "trained_box_denoiser", "trained_direct_denoiser", "trained_scene_ddpm",
           "tuned_filter_strength"]

CHAPTER = "13_diffusion_for_detection"


@dataclass(frozen=True)
class Settings(config.Settings):
    restoration: RestorationRecipe = RestorationRecipe()
    boxes: BoxDiffusionRecipe = BoxDiffusionRecipe()
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "best_recovered_share": ">= 0.5", "diffusiondet_map_50": ">= 0.80", "diffusiondet_map": ">= 0.50",
        "diffusiondet_train_s": "<= 600",
        "map_lost_with_more_steps": "<= 0.01"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(restoration=dict(test_size=8, noise_stds=(0.1, 0.5), low_light_gains=(0.1,), train_size=32,
                                   tuning_size=4, denoiser=dict(crops_per_scene=2, width=8, batch_size=8),
                                   diffusion_steps=20, direct_steps=20, purify_steps=2,
                                   finetune=dict(steps=8, batch_size=4), checkpoint_every=10),
                  boxes=dict(hidden=32, train_boxes=16, steps=20, batch_size=4, eval_boxes=(8, 32), eval_steps=(1, 2),
                             boxes=32, sample_steps=2),
                  targets={}),
    # not yet run on a GPU: the cpu profile's floors until it has been
    "gpu": dict(restoration=dict(test_size=500, methods=METHODS, noise_stds=(0.1, 0.2, 0.3, 0.4, 0.5),
                                 low_light_gains=(0.3, 0.2, 0.1), train_size=4000, tuning_size=32,
                                 denoiser=dict(crop_size=64, width=64, batch_size=64), diffusion_steps=8000,
                                 direct_steps=4000, finetune=dict(steps=1000, batch_size=32), checkpoint_every=1000),
                boxes=dict(hidden=256, stages=3, train_boxes=100, steps=4000, batch_size=32, lr=5e-4,
                           eval_boxes=(8, 32, 100, 300), eval_steps=(1, 2, 4, 8))),
}


def detector(cfg: config.Config, *, progress: bool = True) -> DenseDetector:
    """Chapter 08's trained detector in this chapter's profile (cached; trained first if it is not)."""
    return ch08.trained_detector(detector_settings(cfg), progress=progress)[0]


def restoration_summary(cfg: config.Config, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """At the strongest Gaussian noise: the clean images' mAP@0.5 (``ceiling``), each method's (``map_50``), the share
    of the gap between no restoration and clean that each method recovers (``recovered``), the best method and the
    methods ranked by mAP@0.5."""
    strongest = max(cfg.restoration.noise_stds)
    ceiling = next(row["map_50"] for row in rows if row["kind"] == "clean" and row["method"] == "none")
    map_50 = {row["method"]: row["map_50"] for row in rows if row["kind"] == "gaussian"
              and row["strength"] == strongest}
    gap = ceiling - map_50["none"]
    recovered = {method: (value - map_50["none"]) / gap for method, value in map_50.items() if method != "none"}
    return {"strongest": strongest, "ceiling": ceiling, "map_50": map_50, "recovered": recovered,
            "best": max(recovered, key=recovered.get), "ranking": sorted(map_50, key=map_50.get, reverse=True)}


def boxes_summary(cfg: config.Config, table: list[dict[str, float]]) -> dict[str, Any]:
    """The box denoiser at ``cfg.boxes.boxes`` boxes: with ``cfg.boxes.sample_steps`` steps (``main``), with one
    (``one_step``), and the mAP@[.5:.95] lost by taking the steps (``lost``; negative when they gain)."""
    at = {(row["boxes"], row["steps"]): row for row in table}
    main, one_step = at[(cfg.boxes.boxes, cfg.boxes.sample_steps)], at[(cfg.boxes.boxes, 1)]
    return {"main": main, "one_step": one_step, "lost": one_step["map"] - main["map"]}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 13's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)
