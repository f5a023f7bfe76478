"""Segmentation exercises: iou_and_dice, otsu_threshold and U-Net's crop_and_concat.

Each checker runs the student's function on deterministic cases, compares it with the course's
implementation (``cvcourse.segmentation.metrics``, ``cvcourse.segmentation.threshold``) or a short reference,
and names the common mistake behind a wrong result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.segmentation import metrics
from cvcourse.segmentation.threshold import between_class_variance, otsu_threshold

# ---------------------------------------------------------------------------------------------
# iou_and_dice(pred, target) -> (iou, dice)


def iou_and_dice_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Deterministic (description, pred, target) binary masks (H, W), empty masks included."""
    pred, target = torch.zeros(2, 8, 10, dtype=torch.bool)
    pred[1:5, 2:8] = True
    target[3:7, 4:9] = True
    disjoint = torch.zeros(8, 10, dtype=torch.bool)
    disjoint[6:, :2] = True
    empty = torch.zeros(8, 10, dtype=torch.bool)
    generator = torch.Generator().manual_seed(0)
    random_pred, random_target = (torch.rand(2, 16, 16, generator=generator) < 0.4).long()
    return [
        ("two overlapping rectangles", pred, target),
        ("identical masks", target, target.clone()),
        ("masks that do not overlap", pred, disjoint),
        ("two empty masks", empty, empty.clone()),
        ("an empty prediction", empty, target),
        ("random masks of 0s and 1s (int64)", random_pred, random_target),
    ]


def as_number(value: Any, name: str, what: str) -> float:
    """``value`` as a float (a Python number, NumPy scalar or one-element tensor), or ExerciseFailed."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseFailed(
            f"{name} should return {what} as one number, got {type(value).__name__}; "
            "turn a one-element tensor into a number with .item()"
        ) from None


def iou_and_dice_hint(got: tuple[float, float], pred: torch.Tensor, target: torch.Tensor) -> str:
    """Name the mistake that turns the right (IoU, Dice) into ``got``, or give a general hint."""
    expected_iou, expected_dice = metrics.iou(pred, target).item(), metrics.dice(pred, target).item()
    overlap = (pred.bool() & target.bool()).sum().item()
    total = (pred.bool().sum() + target.bool().sum()).item()
    got_iou, got_dice = got

    def close(a: float, b: float) -> bool:
        return math.isclose(a, b, abs_tol=1e-6)

    if total == 0:
        return (
            "two empty masks agree perfectly: when both masks are empty, 0 / 0 is undefined, "
            "so return 1.0 for both scores in that case"
        )
    if close(got_iou, expected_dice) and close(got_dice, expected_iou):
        return "the two scores are swapped: return (iou, dice) in this order"
    if close(got_dice, expected_iou):
        return "your Dice equals the IoU: Dice is 2 |A ∩ B| / (|A| + |B|), with the sizes of both masks below"
    if close(got_iou, overlap / total):
        return "the union counts the overlap twice: |A ∪ B| = |A| + |B| - |A ∩ B|, or (pred | target).sum()"
    if close(got_iou, expected_iou):
        return "the IoU is right but the Dice is not: Dice = 2 |A ∩ B| / (|A| + |B|)"
    return "count the pixels of the intersection (pred & target) and of the union (pred | target) with .sum()"


@checker("iou_and_dice")
def check_iou_and_dice(answer: Callable[[torch.Tensor, torch.Tensor], tuple[Any, Any]]) -> str:
    """Compare with ``cvcourse.segmentation.metrics.iou`` and ``dice`` (two empty masks score 1.0)."""
    cases = iou_and_dice_cases()
    for case, pred, target in cases:
        result = call_answer("iou_and_dice", answer, case, pred.clone(), target.clone())
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise ExerciseFailed(
                f"iou_and_dice should return two numbers (iou, dice), got {type(result).__name__} on {case}; "
                "end the function with: return iou, dice"
            )
        got = (as_number(result[0], "iou_and_dice", "the IoU"), as_number(result[1], "iou_and_dice", "the Dice"))
        expected = (metrics.iou(pred, target).item(), metrics.dice(pred, target).item())
        if not all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, expected)):
            raise ExerciseFailed(f"wrong scores for {case}: {iou_and_dice_hint(got, pred, target)}")
    return f"all {len(cases)} cases match cvcourse.segmentation.metrics.iou and cvcourse.segmentation.metrics.dice"


# ---------------------------------------------------------------------------------------------
# otsu_threshold(image) -> float

OTSU_BINS = 256
OTSU_TOLERANCE_BINS = 3  # other histograms (64..1000 bins, np.histogram) land within 2.5 bins
WITHIN_CLASS_SHARE = 0.02  # maximising the within-class variance gives < 0.2% of Otsu's sigma_b^2, quantiles > 8%


def bimodal_image(seed: int, size: tuple[int, int], dark: tuple[float, float], bright: tuple[float, float],
                  bright_fraction: float) -> torch.Tensor:
    """A float image whose pixels are drawn from two normal distributions (mean, std): dark and bright."""
    generator = torch.Generator().manual_seed(seed)
    pixels = size[0] * size[1]
    dark_pixels = torch.randn(pixels, generator=generator) * dark[1] + dark[0]
    bright_pixels = torch.randn(pixels, generator=generator) * bright[1] + bright[0]
    is_bright = torch.rand(pixels, generator=generator) < bright_fraction
    return torch.where(is_bright, bright_pixels, dark_pixels).reshape(size)


def otsu_cases() -> list[tuple[str, torch.Tensor]]:
    """Deterministic bimodal images with unequal classes, so that the mean is not a good threshold."""
    return [
        ("a dark image with 30% bright pixels", bimodal_image(0, (48, 64), (0.25, 0.05), (0.7, 0.08), 0.3)),
        ("intensities from 20 to 250 with 15% bright pixels", bimodal_image(1, (40, 40), (60, 12), (190, 20), 0.15)),
        ("a wide dark mode under 60% bright pixels", bimodal_image(2, (32, 56), (0.4, 0.1), (0.8, 0.03), 0.6)),
    ]


def share_of_otsu_variance(image: torch.Tensor, t: float) -> float:
    """sigma_b^2 of the split at intensity ``t`` as a fraction of Otsu's (the largest); near 0 at the
    ends of the intensity range, where maximising the within-class variance lands."""
    centres, variance = between_class_variance(image, OTSU_BINS)
    variance = variance.nan_to_num(0.0)
    bin_width = (centres[1] - centres[0]).item()
    split = min(max(round((t - centres[0].item()) / bin_width), 0), OTSU_BINS - 2)
    return (variance[split] / variance.max()).item()


def close_in_bins(a: float, b: float, image: torch.Tensor) -> bool:
    """True when intensities ``a`` and ``b`` are at most OTSU_TOLERANCE_BINS histogram bins apart."""
    bin_width = (image.max() - image.min()).item() / OTSU_BINS
    return abs(a - b) <= OTSU_TOLERANCE_BINS * bin_width


def otsu_hint(got: float, image: torch.Tensor, expected: float) -> str:
    """Name the mistake that gives threshold ``got`` instead of Otsu's, or give a general hint."""
    low, high = image.min().item(), image.max().item()
    expected_bin = (expected - low) / (high - low) * OTSU_BINS - 0.5
    if abs(got - expected_bin) <= OTSU_TOLERANCE_BINS:
        return (
            "this looks like a bin index, not an intensity: convert bin k to the intensity of its centre, "
            "image.min() + (k + 0.5) * bin width"
        )
    if not low <= got <= high:
        return f"the threshold should be an intensity between the image's min {low:.4g} and max {high:.4g}"
    if close_in_bins(got, image.mean().item(), image):
        return (
            "this is the mean intensity; Otsu picks the t that maximises the between-class variance "
            "w0 w1 (mu0 - mu1)^2, which is not the mean when the two classes have different sizes"
        )
    if share_of_otsu_variance(image, got) < WITHIN_CLASS_SHARE:
        return (
            "this threshold hardly separates anything, as if it maximised the within-class variance, the "
            "opposite of Otsu: maximise the between-class variance w0 w1 (mu0 - mu1)^2 (the same as minimising "
            "the within-class variance)"
        )
    return (
        f"make a histogram of {OTSU_BINS} bins from image.min() to image.max() (torch.histc), compute w0, w1, "
        "mu0, mu1 of every split at once with cumsum, and return the intensity of the split with the largest "
        "w0 w1 (mu0 - mu1)^2"
    )


@checker("otsu_threshold")
def check_otsu_threshold(answer: Callable[[torch.Tensor], float]) -> str:
    """Compare with ``cvcourse.segmentation.otsu_threshold`` (equal to ``skimage.filters.threshold_otsu``),
    within a few histogram bins so that any sensible histogram passes."""
    cases = otsu_cases()
    for case, image in cases:
        got = as_number(call_answer("otsu_threshold", answer, case, image.clone()), "otsu_threshold", "the threshold")
        expected = otsu_threshold(image, bins=OTSU_BINS)
        if not close_in_bins(got, expected, image):
            raise ExerciseFailed(f"threshold {got:.4g} is wrong for {case}: {otsu_hint(got, image, expected)}")
    return f"all {len(cases)} images match cvcourse.segmentation.otsu_threshold"


# ---------------------------------------------------------------------------------------------
# crop_and_concat(skip, upsampled) -> tensor


def crop_and_concat_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Deterministic (description, skip (B, C1, H1, W1), upsampled (B, C2, H2, W2)) pairs."""
    generator = torch.Generator().manual_seed(0)
    shapes = [
        ("equal channels, even size differences", (2, 3, 12, 10), (2, 3, 8, 6)),
        ("odd size differences", (1, 4, 9, 11), (1, 2, 6, 8)),
        ("a wide skip map with few channels", (2, 2, 10, 17), (2, 5, 8, 9)),
        ("maps of the same size (nothing to crop)", (1, 2, 5, 6), (1, 3, 5, 6)),
    ]
    return [
        (case, torch.randn(skip, generator=generator), torch.randn(upsampled, generator=generator))
        for case, skip, upsampled in shapes
    ]


EMPTY_SLICE_HINT = "With nothing to crop, a slice x[a:-b] with b = 0 is empty: slice with x[top : top + height]"


def crop(skip: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The window of ``skip`` with this top-left corner and size."""
    return skip[..., top : top + height, left : left + width]


def centred_crops(skip: torch.Tensor, height: int, width: int) -> list[torch.Tensor]:
    """Every centre crop: an odd margin may put its extra pixel on either side."""
    rows, cols = skip.shape[-2] - height, skip.shape[-1] - width
    return [
        crop(skip, top, left, height, width)
        for top in {rows // 2, (rows + 1) // 2}
        for left in {cols // 2, (cols + 1) // 2}
    ]


def crop_and_concat_hint(result: torch.Tensor, skip: torch.Tensor, upsampled: torch.Tensor) -> str:
    """Name the mistake behind a result of the right shape but wrong values, or give a general hint."""
    height, width = upsampled.shape[-2:]
    rows, cols = skip.shape[-2] - height, skip.shape[-1] - width
    reversed_order = [torch.cat([upsampled, cropped], dim=1) for cropped in centred_crops(skip, height, width)]
    if any(torch.equal(result, wrong) for wrong in reversed_order):
        return "the order is reversed: the U-Net paper concatenates [skip, upsampled], the encoder's map first"
    if torch.equal(result, torch.cat([crop(skip, 0, 0, height, width), upsampled], dim=1)):
        return "this crops the top-left corner of skip; take the centre, with equal margins on every side"
    if torch.equal(result, torch.cat([crop(skip, rows, cols, height, width), upsampled], dim=1)):
        return "this crops the bottom-right corner of skip; take the centre, with equal margins on every side"
    return "crop the centre of skip to upsampled's height and width, then concatenate [skip, upsampled] on dim 1"


def crop_and_concat_shape_hint(shape: torch.Size, skip: torch.Tensor, upsampled: torch.Tensor) -> str:
    """Name the mistake behind a result of the wrong shape, or give a general hint."""
    height, width = upsampled.shape[-2:]
    if skip.shape[1] == upsampled.shape[1]:  # equal channels: torch.cat on any dim works, so check which
        cropped = crop(skip, 0, 0, height, width)
        if any(shape == torch.cat([cropped, upsampled], dim=dim).shape for dim in (0, 2, 3)):
            return "the maps are concatenated on the wrong dimension: channels are dim 1 of (B, C, H, W)"
    return f"crop skip to upsampled's height and width ({height}, {width}), then torch.cat(..., dim=1)"


@checker("crop_and_concat")
def check_crop_and_concat(answer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare with a centre crop of ``skip`` concatenated before ``upsampled`` on the channel dimension;
    for an odd margin either centre crop passes (``torchvision.transforms.v2.functional.center_crop`` rounds)."""
    cases = crop_and_concat_cases()
    for case, skip, upsampled in cases:
        where = f"{case} (skip {tuple(skip.shape)}, upsampled {tuple(upsampled.shape)})"
        try:
            result = call_answer("crop_and_concat", answer, where, skip.clone(), upsampled.clone())
        except ExerciseFailed as failure:
            if skip.shape[-2:] != upsampled.shape[-2:]:
                raise
            raise ExerciseFailed(f"{failure}\n{EMPTY_SLICE_HINT}") from failure
        if not isinstance(result, torch.Tensor):
            raise ExerciseFailed(f"crop_and_concat should return a torch.Tensor, got {type(result).__name__}")
        result = result.detach().cpu()
        height, width = upsampled.shape[-2:]
        expected_shape = (skip.shape[0], skip.shape[1] + upsampled.shape[1], height, width)
        if tuple(result.shape) != expected_shape:
            raise ExerciseFailed(
                f"crop_and_concat should return shape {expected_shape} for {where}, got {tuple(result.shape)}: "
                f"{crop_and_concat_shape_hint(result.shape, skip, upsampled)}"
            )
        accepted = [torch.cat([cropped, upsampled], dim=1) for cropped in centred_crops(skip, height, width)]
        if not any(torch.equal(result, expected) for expected in accepted):
            raise ExerciseFailed(f"wrong values for {where}: {crop_and_concat_hint(result, skip, upsampled)}")
    return f"all {len(cases)} cases match a centre crop of skip concatenated before upsampled"
