"""Chapter 12, generated training data for street scenes: chapter 11's few-label experiment
(:mod:`cvcourse.recipes.few_labels`) on chapter 02's street scenes, eight classes at 32 x 64 pixels.

What changes from the cells: three colour channels and eight one-hot mask channels; only left-right flips keep a
street scene a street scene (the sky stays up); each generator trains on 32-pixel-wide crops of its scenes and their
flips, so a few scenes give many training images; the segmenter is deeper and wider, since eight classes with small
cars, pedestrians and lane markings are harder than cells; the strong augmentation has no elastic deformation (it
pulls the fill value, class 0, in at the borders: sky on the road); scores are the mIoU of the test split. The
DatasetGAN-style regime is chapter 11's alone: an unconditional model of the scenes would not fit the chapter's time
on a laptop beside the four mask-conditioned ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config
from cvcourse.recipes import few_labels
from cvcourse.recipes.few_labels import (DdpmRecipe, SegmenterRecipe, agreement, faithfulness, few_label_table,
                                         guidance_sweep, image_shape, images_and_masks, judge, labelled, mask_pairs,
                                         noise_schedule, regime_data, regime_score, sample, strong_augmentation,
                                         test_score, train_segmenter, trained_mask_ddpm)

__all__ = ["CHAPTER", "OVERRIDES", "REGIMES", "Settings", "agreement", "faithfulness", "few_label_table",
           "guidance_sweep", "image_shape", "images_and_masks", "judge", "labelled", "load", "mask_pairs",
           "noise_schedule", "regime_data", "regime_score", "sample", "strong_augmentation", "test_score",
           "train_segmenter", "trained_mask_ddpm"]

CHAPTER = "12_generated_street_scenes"
REGIMES = ("real", "augmented", "generated", "augmented + generated")


@dataclass(frozen=True)
class Settings(few_labels.Settings):
    dataset: str = "streets"
    image_size: int | tuple[int, int] = (32, 64)
    regimes: tuple[str, ...] = REGIMES
    sweep_masks: int = 32
    ddpm: DdpmRecipe = DdpmRecipe(crop_width=32, batch_size=16, steps=1200)
    segmenter: SegmenterRecipe = SegmenterRecipe(depth=3, width=16, steps=120, batch_size=8, lr=2e-2,
                                                 elastic_alpha=0.0)
    judge: SegmenterRecipe = SegmenterRecipe(depth=3, width=16, steps=400)
    targets: Mapping[str, str] = field(default_factory=lambda: {"faithfulness_miou": ">= 0.60"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(pool_size=64, test_size=16, label_counts=(5, 25), seeds=(0, 1), generated_pairs=16, sample_steps=5,
                  guidance_sweep=(0.0, 2.0), sweep_masks=8,
                  ddpm=dict(width=8, steps=30, crop_width=16), segmenter=dict(width=8, steps=20),
                  judge=dict(width=8, steps=40), targets={}),
    # not yet run on a GPU: the cpu profile's floor until it has been
    "gpu": dict(image_size=(64, 128), pool_size=4000, test_size=500, label_counts=(5, 10, 25, 100, 400),
                seeds=(0, 1, 2, 3, 4), generated_pairs=1000, sample_steps=50, sweep_masks=200,
                ddpm=dict(width=48, batch_size=64, steps=4000, crop_width=64),
                segmenter=dict(width=32, steps=1000, batch_size=16),
                judge=dict(width=32, steps=2000)),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 12's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)
