"""Deepfakes as edits: a real image with one region replaced, and how well a localiser finds that region.

The edit masks are rectangles over the middle of the image, where the content is; the edits themselves are made by
RePaint (``cvcourse.diffusion.repaint``). A localiser outputs a probability per pixel; it is scored as segmentation
and anomaly maps are: pixel AUROC over every pixel (``cvcourse.metrics.pixel_auroc``) and the IoU of its mask at 0.5.
"""

from __future__ import annotations

import torch

from cvcourse.metrics import pixel_auroc
from cvcourse.segmentation.metrics import iou


def edit_masks(count: int, image_size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` bool masks (count, 1, S, S), True on the region to replace: one rectangle each, its sides a quarter to
    a half of the image's, inside the middle half of the image (where a centred object is)."""
    if count < 1 or image_size < 8:
        raise ValueError(f"edit_masks needs count >= 1 and image_size >= 8, got {count} and {image_size}.")
    masks = torch.zeros(count, 1, image_size, image_size, dtype=torch.bool)
    low, high, margin = image_size // 4, image_size // 2, image_size // 4
    for mask in masks:
        height, width = (int(torch.randint(low, high + 1, (1,), generator=generator)) for _ in range(2))
        top, left = (int(torch.randint(margin, image_size - margin - side + 1, (1,), generator=generator))
                     for side in (height, width))
        mask[:, top:top + height, left:left + width] = True
    return masks


def localisation_scores(probabilities: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Pixel AUROC of ``probabilities`` (N, H, W) against the edit ``masks`` (N, H, W) bool, and the mean IoU of the
    predicted masks ``probabilities > 0.5``."""
    if probabilities.shape != masks.shape or masks.dtype != torch.bool:
        raise ValueError(f"probabilities {tuple(probabilities.shape)} and bool masks {tuple(masks.shape)} "
                         f"({masks.dtype}) must have one shape (N, H, W).")
    return {"pixel_auroc": pixel_auroc(probabilities, masks), "iou": float(iou(probabilities > 0.5, masks).mean())}
