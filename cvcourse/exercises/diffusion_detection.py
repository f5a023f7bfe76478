"""Diffusion-for-detection exercises: the timestep of a known noise level, boxes corrupted by the forward process,
and one box-renewal step.

``sigma_to_timestep`` is compared with :func:`cvcourse.diffusion.purification.noise_level_timestep`,
``corrupt_boxes`` with :func:`cvcourse.detection.box_diffusion.boxes_to_signal` and the forward process (eq. 4 of Ho
et al. 2020), ``renew`` with :func:`cvcourse.detection.box_diffusion.renew_boxes`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cvcourse.detection.box_diffusion import SIGNAL_SCALE, boxes_to_signal
from cvcourse.diffusion.purification import noise_level_timestep
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.exercises.generative import close, returned_tensor

# ---------------------------------------------------------------------------------------------
# sigma_to_timestep(alpha_bar, sigma) -> the int t whose sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) is nearest


def _nearest(values: torch.Tensor, target: float) -> int:
    return int((values - target).abs().argmin())


@checker("sigma_to_timestep")
def check_sigma_to_timestep(answer: Callable[[torch.Tensor, float], int]) -> str:
    """Compare with ``noise_level_timestep`` on the cosine and linear schedules."""
    for name in ("cosine", "linear"):
        schedule = NoiseSchedule.named(name, 1000)
        alpha_bar = schedule.alpha_bar
        for sigma in (0.2, 0.6, 1.0):
            case = f"the {name} schedule, sigma = {sigma}"
            result = call_answer("sigma_to_timestep", answer, case, alpha_bar.clone(), sigma)
            if isinstance(result, torch.Tensor) and result.numel() == 1:
                result = result.item()
            if isinstance(result, bool) or not isinstance(result, int):
                raise ExerciseFailed(f"sigma_to_timestep should return an int timestep on {case}, got "
                                     f"{type(result).__name__}: convert with int(...)")
            expected = noise_level_timestep(schedule, sigma)
            if result == expected:
                continue
            if result == _nearest((1 - alpha_bar).sqrt(), sigma):
                raise ExerciseFailed(f"on {case}: sqrt(1 - alpha_bar) is the noise of x_t, whose signal is scaled by "
                                     "sqrt(alpha_bar); the image y = x_0 + sigma n must be scaled first, so compare "
                                     "sigma with sqrt((1 - alpha_bar) / alpha_bar)")
            if result == _nearest((1 - alpha_bar) / alpha_bar, sigma):
                raise ExerciseFailed(f"on {case}: (1 - alpha_bar) / alpha_bar is a variance; compare it with sigma**2, "
                                     "or its square root with sigma")
            raise ExerciseFailed(f"on {case}: expected t = {expected}, got {result}; find the t whose "
                                 "sqrt((1 - alpha_bar_t) / alpha_bar_t) is closest to sigma (argmin of the distance)")
    return "the noisy image is the forward process at that t, up to a factor sqrt(alpha_bar_t)"


# ---------------------------------------------------------------------------------------------
# corrupt_boxes(boxes, image_size, alpha_bar_t, noise) -> x_t (N, 4)


def box_corruption_mistakes(boxes: torch.Tensor, image_size: tuple[int, int], alpha_bar_t: float,
                            noise: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    height, width = image_size
    unit_xyxy = boxes / boxes.new_tensor([width, height, width, height])
    x0 = boxes_to_signal(boxes, image_size)
    a, b = alpha_bar_t**0.5, (1 - alpha_bar_t) ** 0.5
    unit_cxcywh = (x0 / SIGNAL_SCALE + 1) / 2
    return [
        (a * (2 * unit_xyxy - 1) * SIGNAL_SCALE + b * noise,
         "DiffusionDet noises the centre and size (cx, cy, w, h), not the corners: convert with "
         "torchvision.ops.box_convert(boxes, 'xyxy', 'cxcywh') first"),
        (a * unit_cxcywh + b * noise, "map the normalised boxes from [0, 1] to [-2, 2] ((2 x - 1) * 2) before noising"),
        (a * unit_cxcywh * SIGNAL_SCALE + b * noise, "map [0, 1] to [-2, 2] with (2 x - 1) * 2: centred on 0, as the "
                                                     "noise is"),
        (alpha_bar_t * x0 + (1 - alpha_bar_t) * noise, "the forward process uses the square roots: sqrt(alpha_bar) "
                                                       "x_0 + sqrt(1 - alpha_bar) eps"),
        (b * x0 + a * noise, "sqrt(alpha_bar) multiplies the signal and sqrt(1 - alpha_bar) the noise, not the "
                             "other way round"),
    ]


@checker("corrupt_boxes")
def check_corrupt_boxes(answer: Callable[..., torch.Tensor]) -> str:
    """Compare with ``q_sample`` on ``boxes_to_signal(boxes, image_size)``."""
    generator = torch.Generator().manual_seed(13)
    boxes = torch.tensor([[0.0, 0.0, 60.0, 40.0], [10.0, 5.0, 20.0, 25.0], [31.0, 2.0, 59.0, 39.0]])
    for image_size, alpha_bar_t in [((40, 60), 0.5), ((40, 60), 0.9), ((40, 60), 0.01)]:
        noise = torch.randn(3, 4, generator=generator)
        case = f"3 boxes in a {image_size[0]} x {image_size[1]} image, alpha_bar_t = {alpha_bar_t}"
        expected = alpha_bar_t**0.5 * boxes_to_signal(boxes, image_size) + (1 - alpha_bar_t) ** 0.5 * noise
        result = returned_tensor(call_answer("corrupt_boxes", answer, case, boxes.clone(), image_size, alpha_bar_t,
                                             noise.clone()), "corrupt_boxes", case, expected.shape,
                                 lambda shape: "one row of 4 numbers per box")
        if close(result, expected):
            continue
        hint = next((hint for wrong, hint in box_corruption_mistakes(boxes, image_size, alpha_bar_t, noise)
                     if close(result, wrong)), None)
        default = ("normalise the cxcywh boxes by the image size, map them to [-2, 2] and noise them with the forward "
                   "process")
        raise ExerciseFailed(f"on {case}: {hint or default}")
    return "boxes are the signal: centre and size in [-2, 2], noised like pixels"


# ---------------------------------------------------------------------------------------------
# renew(x, scores, threshold, fresh) -> x with every box scoring below threshold replaced by its row of fresh


@checker("renew")
def check_renew(answer: Callable[..., torch.Tensor]) -> str:
    """Compare with ``renew_boxes``: boxes scoring at least ``threshold`` stay, the others become fresh noise."""
    generator = torch.Generator().manual_seed(14)
    x, fresh = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    scores = torch.tensor([0.9, 0.1, 0.5, 0.49, 0.7, 0.0])
    case = "6 boxes, threshold 0.5 (one scores exactly 0.5)"
    kept = scores >= 0.5
    expected = torch.where(kept[:, None], x, fresh)
    result = call_answer("renew", answer, case, x.clone(), scores.clone(), 0.5, fresh.clone())
    if isinstance(result, torch.Tensor) and result.shape == (int(kept.sum()), 4) and close(result, x[kept]):
        raise ExerciseFailed("renewal keeps N boxes: replace the weak ones by fresh noise instead of dropping them")
    result = returned_tensor(result, "renew", case, expected.shape, lambda shape: "all N boxes, (N, 4)")
    if close(result, torch.where(kept[:, None], fresh, x)):
        raise ExerciseFailed("the boxes that score at least the threshold stay; those below it are renewed")
    if close(result, torch.where((scores > 0.5)[:, None], x, fresh)):
        raise ExerciseFailed("a box scoring exactly the threshold stays: keep scores >= threshold")
    if not close(result, expected):
        raise ExerciseFailed(f"on {case}: expected torch.where(keep[:, None], x, fresh) with keep = scores >= "
                             "threshold")
    return "N boxes keep searching: the confident ones stay, the rest start again from noise"
