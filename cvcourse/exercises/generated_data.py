"""Generated training data exercises: a mask as input channels, the flips that keep a street scene upright, and
results over seeds.

``mask_channels`` is compared with :func:`cvcourse.models.mask_diffusion_unet.mask_channels`; ``street_flips`` with
:func:`cvcourse.data.few_images.symmetries` for upright images; ``seed_summary`` with
:mod:`cvcourse.statistics` (the mean and sample standard deviation of each setting's per-seed scores, and whether
their difference exceeds twice its standard error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.exercises.generative import close, returned_tensor
from cvcourse.models.mask_diffusion_unet import mask_channels as reference_mask_channels
from cvcourse.data.few_images import symmetries
from cvcourse.statistics import clearly_different, mean_and_spread

# ---------------------------------------------------------------------------------------------
# mask_channels(masks, num_classes) -> (B, num_classes, H, W) float one-hot, the null class num_classes all zero


def mask_cases() -> list[tuple[str, torch.Tensor, int]]:
    generator = torch.Generator().manual_seed(11)
    no_top_class = torch.randint(0, 3, (2, 5, 6), generator=generator)  # class 3 of 4 never appears
    some_null = torch.randint(0, 3, (3, 4, 4), generator=generator)
    some_null[0] = 2  # image 0: the null class everywhere ("no mask")
    return [("binary masks (B=2, 4 x 4)", torch.randint(0, 2, (2, 4, 4), generator=generator), 2),
            ("4 classes of which the last never appears", no_top_class, 4),
            ("2 classes, image 0 all null (value 2)", some_null, 2)]


def mask_mistakes(masks: torch.Tensor, num_classes: int) -> list[tuple[torch.Tensor, str]]:
    with_null = F.one_hot(masks, num_classes + 1).float()
    return [
        (with_null[..., :num_classes], "channels go second, (B, K, H, W): move them with .permute(0, 3, 1, 2)"),
        (with_null.permute(0, 3, 1, 2), "the null class gets no channel of its own: its pixels are all zeros"),
        (masks[:, None].float(), "one channel per class, each 1 where the mask has that class (one-hot)"),
    ]


@checker("mask_channels")
def check_mask_channels(answer: Callable[..., torch.Tensor]) -> str:
    """Compare with the package's ``mask_channels``."""
    cases = mask_cases()
    for case, masks, num_classes in cases:
        expected = reference_mask_channels(masks, num_classes)
        result = call_answer("mask_channels", answer, case, masks.clone(), num_classes)
        if isinstance(result, torch.Tensor) and not result.is_floating_point():
            raise ExerciseFailed(f"mask_channels should return float channels (a network's input) on {case}, got "
                                 f"{result.dtype}: convert with .float()")
        hint = next((hint for wrong, hint in mask_mistakes(masks, num_classes)
                     if isinstance(result, torch.Tensor) and wrong.shape == result.shape
                     and close(result.detach().float(), wrong)), None)
        if hint:
            raise ExerciseFailed(f"wrong channels for {case}: {hint}")
        got = returned_tensor(result, "mask_channels", case, expected.shape,
                              lambda shape: "one channel per class (num_classes of them, not the mask's largest "
                                            "value + 1), channels second")
        if not close(got, expected):
            raise ExerciseFailed(f"wrong channels for {case}: channel c is 1 exactly where the mask is c")
    return f"all {len(cases)} cases match the one-hot channels the mask-conditioned model reads"


# ---------------------------------------------------------------------------------------------
# street_flips(images, masks) -> (images and their left-right flips, masks and theirs), originals first


def street_flip_mistakes(images: torch.Tensor, masks: torch.Tensor) -> list[tuple[tuple[torch.Tensor, ...], str]]:
    return [
        ((torch.cat([images, images.flip(-2)]), torch.cat([masks, masks.flip(-2)])),
         "that flip turns the scene upside down (sky at the bottom): flip the width, the last dimension"),
        ((torch.cat([images, images.flip(1)]), torch.cat([masks, masks.flip(-1)])),
         "dimension 1 of an image batch is the colour channels; flip the last dimension, the width"),
        ((torch.cat([images, images.flip(-1)]), torch.cat([masks, masks])),
         "each mask must be flipped with its image, or the labels no longer match the pixels"),
        ((images.flip(-1), masks.flip(-1)), "keep the originals too: the originals first, then their flips"),
        ((torch.cat([images.flip(-1), images]), torch.cat([masks.flip(-1), masks])),
         "put the originals first, then their flips"),
    ]


@checker("street_flips")
def check_street_flips(answer: Callable[..., tuple]) -> str:
    """Compare with ``symmetries(images, masks, upright=True)``."""
    generator = torch.Generator().manual_seed(12)
    images, masks = torch.rand(2, 3, 4, 6, generator=generator), torch.randint(0, 8, (2, 4, 6), generator=generator)
    expected = symmetries(images, masks, upright=True)
    result = call_answer("street_flips", answer, "2 scenes (3 x 4 x 6)", images.clone(), masks.clone())
    if not isinstance(result, tuple) or len(result) != 2 or not all(isinstance(t, torch.Tensor) for t in result):
        raise ExerciseFailed(f"street_flips should return (images, masks), two tensors, got {type(result).__name__}")
    for wrong, hint in street_flip_mistakes(images, masks):
        if all(got.shape == want.shape and close(got.float(), want.float()) for got, want in zip(result, wrong)):
            raise ExerciseFailed(hint)
    if not all(got.shape == want.shape and close(got.float(), want.float()) for got, want in zip(result, expected)):
        raise ExerciseFailed(f"expected images {tuple(expected[0].shape)} and masks {tuple(expected[1].shape)}: the "
                             "originals, then the same scenes mirrored left to right, masks moved with them")
    return "the originals and their mirror images, sky still up, masks moved with their images"


# ---------------------------------------------------------------------------------------------
# seed_summary(a, b) -> (mean_a, spread_a, mean_b, spread_b, clearly_different)


SEED_CASES = [
    ("3 seeds each, far apart", [0.90, 0.91, 0.93], [0.70, 0.74, 0.71]),
    ("3 seeds each, overlapping", [0.90, 0.70, 0.80], [0.82, 0.76, 0.85]),
    ("4 against 3 seeds, a small gap with a small spread", [0.801, 0.803, 0.802, 0.804], [0.79, 0.791, 0.792]),
    ("3 seeds each, a gap beyond twice its error but within the two spreads", [0.80, 0.82, 0.84],
     [0.764, 0.784, 0.804]),
]


def _population(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


@checker("seed_summary")
def check_seed_summary(answer: Callable[..., tuple]) -> str:
    """Compare with ``mean_and_spread`` of each side and ``clearly_different(a, b)`` (factor 2)."""
    for case, a, b in SEED_CASES:
        result = call_answer("seed_summary", answer, case, list(a), list(b))
        if not isinstance(result, tuple) or len(result) != 5:
            raise ExerciseFailed(f"seed_summary should return (mean_a, spread_a, mean_b, spread_b, clear) on {case}, "
                                 f"got {result!r}")
        (mean_a, spread_a), (mean_b, spread_b) = mean_and_spread(a), mean_and_spread(b)
        numbers = [float(value) for value in result[:4]]
        if not all(math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
                   for got, want in zip(numbers, (mean_a, spread_a, mean_b, spread_b))):
            if math.isclose(numbers[1], _population(a)[1], rel_tol=1e-6):
                raise ExerciseFailed(f"wrong spread on {case}: with a few seeds, divide by n - 1 (the sample "
                                     "standard deviation), not by n")
            if math.isclose(numbers[1], spread_a**2, rel_tol=1e-6):
                raise ExerciseFailed(f"wrong spread on {case}: that is the variance; the spread is its square root")
            raise ExerciseFailed(f"wrong mean or spread on {case}")
        if bool(result[4]) != clearly_different(a, b):
            raise ExerciseFailed(f"wrong verdict on {case}: compare |mean_a - mean_b| with twice its standard error, "
                                 "sqrt(spread_a**2 / n_a + spread_b**2 / n_b), not with the spreads themselves")
    return f"all {len(SEED_CASES)} cases match the means, spreads and verdicts"
