"""Chapter 11, generated training data for segmentation: few labelled cells, a mask-conditioned diffusion model that
makes image-mask pairs, DatasetGAN-style pairs, and the segmenters trained on each.

The experiment is :mod:`cvcourse.recipes.few_labels` (chapter 12 runs it on street scenes); this module holds the
cells' settings: chapter 02's cells at 32 px, K = 5 to 100 labelled ones, five regimes, three seeds.
"""

from __future__ import annotations

from typing import Any

import torch

from cvcourse import config
from cvcourse.recipes.few_labels import (REGIMES, DdpmRecipe, SegmenterRecipe, Settings, agreement,
                                         datasetgan_pairs, faithfulness, few_label_table, guidance_sweep,
                                         image_shape, images_and_masks, judge, labelled, mask_pairs, noise_schedule,
                                         regime_data, regime_score, sample, segmenter, strong_augmentation,
                                         test_score, train_segmenter, trained_mask_ddpm, trained_unconditional_ddpm)

__all__ = ["CHAPTER", "OVERRIDES", "REGIMES", "DdpmRecipe", "SegmenterRecipe", "Settings", "agreement",
           "datasetgan_pairs", "faithfulness", "few_label_table", "guidance_sweep", "image_shape", "images_and_masks",
           "judge", "labelled", "load", "mask_pairs", "noise_schedule", "regime_data", "regime_score",
           "sample", "segmenter", "strong_augmentation", "test_score", "train_segmenter",
           "trained_mask_ddpm", "trained_unconditional_ddpm"]

CHAPTER = "11_generated_training_data"

OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(pool_size=64, test_size=16, label_counts=(5, 25), seeds=(0, 1), generated_pairs=16, sample_steps=5,
                  guidance_sweep=(0.0, 2.0), sweep_masks=8, labeller_steps=30,
                  ddpm=dict(width=8, steps=30), segmenter=dict(steps=20), judge=dict(width=8, steps=40), targets={}),
    # not yet run on a GPU: the cpu profile's floor until it has been
    "gpu": dict(image_size=64, pool_size=4000, test_size=500, label_counts=(5, 10, 25, 100, 400),
                seeds=(0, 1, 2, 3, 4), generated_pairs=1000, sample_steps=50, sweep_masks=200,
                ddpm=dict(width=48, batch_size=64, steps=4000), segmenter=dict(width=16, depth=3, steps=600),
                judge=dict(width=32, steps=2000)),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 11's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)
