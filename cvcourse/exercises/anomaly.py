"""Anomaly detection exercises: the partial forward jump, the pixel anomaly map and image AUROC, written out.

``partial_jump`` is compared with :func:`cvcourse.diffusion.q_sample` (Ho et al. 2020, eq. 4, the jump AnoDDPM takes
to t_lambda), ``pixel_anomaly_map`` with the unsmoothed :func:`cvcourse.anomaly.anomaly_map`, ``image_auroc`` with
:func:`cvcourse.metrics.auroc` (itself tested against scikit-learn). The usual mistakes are recognised by
recomputing them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cvcourse import diffusion, metrics
from cvcourse.anomaly import anomaly_map
from cvcourse.diffusion import NoiseSchedule
from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.exercises.generative import close, returned_tensor

SCHEDULE = NoiseSchedule.named("cosine", 100)

# ---------------------------------------------------------------------------------------------
# partial_jump(x0, t_lambda, noise, alpha_bar) -> sqrt(alpha_bar[t_lambda]) x0 + sqrt(1 - alpha_bar[t_lambda]) noise


def jump_cases() -> list[tuple[str, torch.Tensor, int, torch.Tensor]]:
    """Deterministic (description, x0, t_lambda, noise) on ``SCHEDULE``."""
    generator = torch.Generator().manual_seed(3)
    cases = [("4 images (3, 6, 5) at t_lambda = 25", (4, 3, 6, 5), 25),
             ("2 images (1, 8, 8) at t_lambda = 60", (2, 1, 8, 8), 60),
             ("1 image (3, 4, 4) at t_lambda = 1", (1, 3, 4, 4), 1)]
    return [(case, 2 * torch.rand(shape, generator=generator) - 1, t, torch.randn(shape, generator=generator))
            for case, shape, t in cases]


def jump_mistakes(x0: torch.Tensor, t: int, noise: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """The x_t each usual mistake gives, with its hint."""
    alpha_bar = SCHEDULE.alpha_bar.float()
    a = alpha_bar[t]
    return [
        (a * x0 + (1 - a) * noise, "the weights are alpha_bar and 1 - alpha_bar: they are their square roots, so that "
                                   "x_t keeps unit variance"),
        (alpha_bar[t - 1].sqrt() * x0 + (1 - alpha_bar[t - 1]).sqrt() * noise,
         "this is the jump to t_lambda - 1: index alpha_bar with t_lambda itself"),
        ((1 - a).sqrt() * x0 + a.sqrt() * noise, "the weights are swapped: the image keeps sqrt(alpha_bar)"),
        (x0 + (1 - a).sqrt() * noise, "the image must shrink by sqrt(alpha_bar) as the noise grows"),
        ((1 - SCHEDULE.betas[t].float()).sqrt() * x0 + SCHEDULE.betas[t].float().sqrt() * noise,
         "this is one step from t - 1 to t (beta_t): the jump from x_0 uses the product alpha_bar"),
    ]


@checker("partial_jump")
def check_partial_jump(answer: Callable[..., torch.Tensor]) -> str:
    """Compare with ``q_sample(SCHEDULE, x0, t_lambda, noise)``."""
    cases = jump_cases()
    for case, x0, t, noise in cases:
        result = call_answer("partial_jump", answer, case, x0.clone(), t, noise.clone(), SCHEDULE.alpha_bar.float())
        got = returned_tensor(result, "partial_jump", case, x0.shape,
                              lambda shape: "x_t has one value per pixel, the shape of x0")
        if not close(got, diffusion.q_sample(SCHEDULE, x0, t, noise)):
            hint = next((hint for wrong, hint in jump_mistakes(x0, t, noise) if close(got, wrong)),
                        "q(x_t | x_0) in closed form: sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise")
            raise ExerciseFailed(f"wrong x_t for {case}: {hint}")
    return f"all {len(cases)} cases match cvcourse.diffusion.q_sample"


# ---------------------------------------------------------------------------------------------
# pixel_anomaly_map(images, reconstructions) -> |images - reconstructions| averaged over the channels, (N, H, W)


def map_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(4)
    cases = [("3 RGB images (3, 5, 6)", (3, 3, 5, 6)), ("2 grey images (1, 4, 4)", (2, 1, 4, 4))]
    return [(case, torch.rand(shape, generator=generator), torch.rand(shape, generator=generator))
            for case, shape in cases]


def map_mistakes(images: torch.Tensor, reconstructions: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    difference = images - reconstructions
    return [
        (difference.mean(1), "the difference is signed: a pixel too dark is as anomalous as one too bright, take its "
                             "absolute value"),
        (difference.pow(2).mean(1), "this is the squared error: the map is the absolute difference"),
        (difference.abs().sum(1), "the channels are summed: average them, so the map does not depend on how many "
                                  "channels an image has"),
    ]


@checker("pixel_anomaly_map")
def check_pixel_anomaly_map(answer: Callable[..., torch.Tensor]) -> str:
    """Compare with ``anomaly_map(images, reconstructions, blur_sigma=0)``."""
    cases = map_cases()
    for case, images, reconstructions in cases:
        result = call_answer("pixel_anomaly_map", answer, case, images.clone(), reconstructions.clone())
        n, _, h, w = images.shape
        got = returned_tensor(result, "pixel_anomaly_map", case, torch.Size([n, h, w]),
                              lambda shape: "one value per pixel of each image, (N, H, W): average over the channel "
                                            "dimension (dim 1) without keeping it")
        if not close(got, anomaly_map(images, reconstructions, blur_sigma=0)):
            hint = next((hint for wrong, hint in map_mistakes(images, reconstructions) if close(got, wrong)),
                        "take |images - reconstructions| and average it over the channels")
            raise ExerciseFailed(f"wrong map for {case}: {hint}")
    return f"all {len(cases)} cases match cvcourse.anomaly.anomaly_map (unsmoothed)"


# ---------------------------------------------------------------------------------------------
# image_auroc(scores, labels) -> the probability that a random anomalous image scores above a random normal one


def auroc_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(5)
    labels = torch.tensor([0, 1] * 15)
    return [
        ("30 distinct scores", torch.rand(30, generator=generator) + 0.3 * labels, labels),
        ("30 scores with ties (rounded to one decimal)", (torch.rand(30, generator=generator) + 0.2 * labels)
         .mul(10).round().div(10), labels),
        ("8 scores, anomalies all above the normal ones", torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]),
         torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])),
    ]


def auroc_mistakes(scores: torch.Tensor, labels: torch.Tensor) -> list[tuple[float, str]]:
    positive, negative = scores[labels == 1], scores[labels == 0]
    strictly = (positive[:, None] > negative[None, :]).float().mean().item()
    return [
        (1 - metrics.auroc(scores, labels), "the classes are swapped: count how often an anomalous image (label 1) "
                                            "scores above a normal one"),
        (strictly, "ties count as a loss: a tie between an anomalous and a normal score counts one half"),
        (((scores > 0.5).long() == labels).float().mean().item(),
         "this is the accuracy at the threshold 0.5: AUROC looks at every threshold, compare the scores pairwise"),
    ]


@checker("image_auroc")
def check_image_auroc(answer: Callable[..., float]) -> str:
    """Compare with ``cvcourse.metrics.auroc``."""
    cases = auroc_cases()
    for case, scores, labels in cases:
        result = call_answer("image_auroc", answer, case, scores.clone(), labels.clone())
        try:
            got = float(result)
        except (TypeError, ValueError):
            raise ExerciseFailed(f"image_auroc should return one number, got {type(result).__name__} "
                                 f"on {case}") from None
        expected = metrics.auroc(scores, labels)
        if abs(got - expected) > 1e-6:
            hint = next((hint for wrong, hint in auroc_mistakes(scores, labels) if abs(got - wrong) <= 1e-6),
                        "compare every anomalous score with every normal score: the share of pairs where the "
                        "anomalous one is higher, ties counting one half")
            raise ExerciseFailed(f"wrong AUROC for {case}: {hint}")
    return f"all {len(cases)} cases match cvcourse.metrics.auroc (and scikit-learn's roc_auc_score)"
