"""Boxes as the data of a diffusion model, as DiffusionDet (Chen et al., ICCV 2023, section 3) denoises them.

A box (x1, y1, x2, y2) in pixels becomes its centre and size (cx, cy, w, h) divided by the image's width and height,
in [0, 1], then is mapped to [-scale, scale] (``boxes_to_signal``; the paper's signal scale is 2.0: the larger the
scale, the more signal survives at each timestep). In training, an image's G ground-truth boxes are padded to a fixed
N with random boxes (``padded_with_random_boxes``) and noised by q(x_t | x_0) at a random t; the detector learns to
predict the clean boxes. In sampling, N boxes of pure noise are denoised in a few DDIM steps; between steps the boxes
that score below a threshold are replaced by fresh noise (``renew_boxes``), so that N boxes keep searching.
"""

from __future__ import annotations

import torch
from torchvision import ops

from cvcourse.detection.boxes import check_boxes, check_image_size

SIGNAL_SCALE = 2.0
MIN_SIDE = 1e-4  # of the image: the smallest width or height a random box gets


def _check_scale(scale: float) -> None:
    if scale <= 0:
        raise ValueError(f"the signal scale must be positive, got {scale}; DiffusionDet uses 2.0.")


def boxes_to_signal(boxes: torch.Tensor, image_size: tuple[int, int], scale: float = SIGNAL_SCALE) -> torch.Tensor:
    """xyxy boxes (N, 4) in pixels -> normalised cxcywh mapped from [0, 1] to [-scale, scale]."""
    check_boxes(boxes)
    _check_scale(scale)
    height, width = check_image_size(image_size)
    unit = ops.box_convert(boxes, "xyxy", "cxcywh") / boxes.new_tensor([width, height, width, height])
    return (2 * unit - 1) * scale


def signal_to_boxes(x: torch.Tensor, image_size: tuple[int, int], scale: float = SIGNAL_SCALE) -> torch.Tensor:
    """The inverse of ``boxes_to_signal`` for any x (N, 4): clamped to [-scale, scale] first (noisy boxes leave it),
    then xyxy boxes in pixels clipped to the image."""
    if x.ndim != 2 or x.shape[-1] != 4:
        raise ValueError(f"expected boxes as a signal (N, 4), got {tuple(x.shape)}.")
    _check_scale(scale)
    height, width = check_image_size(image_size)
    unit = (x.clamp(-scale, scale) / scale + 1) / 2
    pixels = unit * x.new_tensor([width, height, width, height])
    return ops.clip_boxes_to_image(ops.box_convert(pixels, "cxcywh", "xyxy"), (height, width))


def random_unit_boxes(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` random normalised cxcywh boxes: each number drawn from N(0.5, 1/6), which keeps almost all of it in
    [0, 1], then clipped there, with sides at least ``MIN_SIDE``."""
    boxes = (torch.randn(count, 4, generator=generator) / 6 + 0.5).clamp(0, 1)
    boxes[:, 2:] = boxes[:, 2:].clamp(min=MIN_SIDE)
    return boxes


def padded_with_random_boxes(boxes: torch.Tensor, image_size: tuple[int, int], count: int, *,
                             scale: float = SIGNAL_SCALE, generator: torch.Generator | None = None) -> torch.Tensor:
    """An image's G ground-truth xyxy boxes as the signal (``count``, 4) DiffusionDet trains on: the G boxes first,
    then ``count`` - G random boxes (all random for an image without objects)."""
    if count < len(boxes):
        raise ValueError(f"{len(boxes)} ground-truth boxes do not fit in {count} boxes; raise the number of boxes "
                         f"the detector denoises to at least the most objects an image holds.")
    random = (2 * random_unit_boxes(count - len(boxes), generator) - 1) * scale
    return torch.cat([boxes_to_signal(boxes, image_size, scale), random.to(boxes.device, boxes.dtype)])


def renew_boxes(x: torch.Tensor, scores: torch.Tensor, threshold: float, *,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Box renewal (DiffusionDet, section 3.4): the boxes x (N, 4) whose score is at least ``threshold`` are kept,
    the others replaced by fresh N(0, I) noise, so N stays N. Returns the boxes and which of them were kept."""
    if x.ndim != 2 or x.shape[-1] != 4 or scores.shape != x.shape[:1]:
        raise ValueError(f"expected boxes (N, 4) and one score per box (N,), got {tuple(x.shape)} and "
                         f"{tuple(scores.shape)}; use each box's highest class probability as its score.")
    kept = scores >= threshold
    fresh = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return torch.where(kept[:, None], x, fresh), kept
