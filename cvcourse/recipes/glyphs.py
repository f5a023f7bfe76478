"""The glyph splits and seeds that chapters 03 to 06 share, so that every generative figure is comparable.

Models train on ``training_glyphs`` (seed 0); samples are compared with as many ``held_out_glyphs`` (seed 1), so
every FCD has the same small-sample bias; samples are drawn from the noise of ``SAMPLE_SEED``.
"""

from __future__ import annotations

import torch

from cvcourse.data.glyphs import glyph_tensors
from cvcourse.generative.metrics import ImageQuality

TRAIN_SEED, HELD_OUT_SEED, SAMPLE_SEED = 0, 1, 1234


def training_glyphs(count: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` training glyphs: images (N, 1, S, S) in [0, 1] and labels (N,)."""
    return glyph_tensors(count, image_size, seed=TRAIN_SEED)


def held_out_glyphs(count: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` held-out glyphs: the real reference every measured sample set is compared with."""
    return glyph_tensors(count, image_size, seed=HELD_OUT_SEED)


def balanced_labels(count: int, num_classes: int = 10) -> torch.Tensor:
    """``count`` labels, every class equally often (0, 1, ..., 9, 0, 1, ...): what a conditional model is asked for."""
    return torch.arange(count) % num_classes


def quality_table(judge: ImageQuality, samples: torch.Tensor, held_out: torch.Tensor) -> dict[str, float]:
    """The samples' FCD with the two real reference points every FCD in the course is printed with, and their
    manifold scores against ``held_out`` (k-NN precision and recall, density, coverage)."""
    references = judge.reference_points(held_out)
    return {"fcd": judge.fcd(samples), "fcd_held_out_real": references["held_out"],
            "fcd_blurred_real": references["blurred"], "fcd_noised_real": references["noised"],
            **judge.manifold(samples, held_out)}
