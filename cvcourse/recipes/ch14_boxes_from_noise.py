"""Chapter 14, boxes from noise: the settings and targets of :mod:`cvcourse.recipes.boxes_from_noise`.

DiffusionDet at the course's scale: boxes denoised from noise on chapter 08's backbone, sampled with several numbers
of boxes and steps, its sampler's ablations, a head with learned proposals, and chapter 08's dense detector side by
side. It uses chapter 08's scenes (``cfg.dataset``: the shape scenes, or Penn-Fudan pedestrians in the gpu profile)
and chapter 08's detector trained on them (``ch08_object_detection.trained_detector``, cached; trained first if it
is not cached).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config
from cvcourse.recipes.boxes_from_noise import (BoxDiffusionRecipe, ablation_table, boxes_and_steps_table,
                                              build_box_denoiser, dense_comparison, evaluate, schedule, test_scenes,
                                              train_batch, trained_box_denoiser)
from cvcourse.recipes.ch08_object_detection import class_names

__all__ = ["CHAPTER", "OVERRIDES", "Settings", "ablation_table", "boxes_and_steps_table", "boxes_summary",
           "build_box_denoiser", "class_names", "dense_comparison", "evaluate", "load", "schedule", "test_scenes",
           "train_batch", "trained_box_denoiser"]

CHAPTER = "14_boxes_from_noise"


@dataclass(frozen=True)
class Settings(config.Settings):
    dataset: str = "shapes"  # chapter 08's scenes: "shapes" or "penn_fudan"
    boxes: BoxDiffusionRecipe = BoxDiffusionRecipe()
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "diffusiondet_map_50": ">= 0.80", "diffusiondet_map": ">= 0.50", "diffusiondet_train_s": "<= 600",
        "map_lost_with_more_steps": "<= 0.01"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(boxes=dict(hidden=32, train_boxes=16, steps=20, batch_size=4, eval_boxes=(8, 32), eval_steps=(1, 2),
                             boxes=32, sample_steps=2, test_size=16),
                  targets={}),
    # Penn-Fudan pedestrians (every test photo: fewer than test_size); not yet run on a GPU: no target until it has
    # been
    "gpu": dict(dataset="penn_fudan", targets={},
                boxes=dict(hidden=256, stages=3, train_boxes=100, steps=4000, batch_size=32, lr=5e-4,
                           eval_boxes=(8, 32, 100, 300), eval_steps=(1, 2, 4, 8), test_size=500)),
}


def boxes_summary(cfg: config.Config, table: list[dict[str, float]]) -> dict[str, Any]:
    """The box denoiser at ``cfg.boxes.boxes`` boxes: with ``cfg.boxes.sample_steps`` steps (``main``), with one
    (``one_step``), and the mAP@[.5:.95] lost by taking the steps (``lost``; negative when they gain)."""
    at = {(row["boxes"], row["steps"]): row for row in table}
    main, one_step = at[(cfg.boxes.boxes, cfg.boxes.sample_steps)], at[(cfg.boxes.boxes, 1)]
    return {"main": main, "one_step": one_step, "lost": one_step["map"] - main["map"]}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 14's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)
