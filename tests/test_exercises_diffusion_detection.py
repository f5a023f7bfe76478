"""The diffusion-for-detection exercises (sigma to timestep, box corruption, renewal): correct answers pass, realistic
mistakes are named."""

import pytest
import torch
from torchvision import ops

from cvcourse import exercises
from cvcourse.exercises import ExerciseFailed


def sigma_to_timestep(alpha_bar, sigma):
    return int((((1 - alpha_bar) / alpha_bar).sqrt() - sigma).abs().argmin())


def corrupt_boxes(boxes, image_size, alpha_bar_t, noise):
    height, width = image_size
    unit = ops.box_convert(boxes, "xyxy", "cxcywh") / torch.tensor([width, height, width, height])
    return alpha_bar_t**0.5 * (2 * unit - 1) * 2 + (1 - alpha_bar_t) ** 0.5 * noise


def renew(x, scores, threshold, fresh):
    return torch.where((scores >= threshold)[:, None], x, fresh)


def test_correct_answers_pass(capsys):
    assert exercises.check("sigma_to_timestep", sigma_to_timestep)
    assert exercises.check("corrupt_boxes", corrupt_boxes)
    assert exercises.check("renew", renew)
    assert "✓ renew" in capsys.readouterr().out


@pytest.mark.parametrize("answer, hint", [
    (lambda a, s: int(((1 - a).sqrt() - s).abs().argmin()), "scaled first"),
    (lambda a, s: int((((1 - a) / a) - s).abs().argmin()), "is a variance"),
    (lambda a, s: 500, "expected t ="),
    (lambda a, s: 500.0, "return an int"),
])
def test_sigma_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.CHECKERS["sigma_to_timestep"](answer)


def xyxy_corruption(boxes, image_size, a, noise):
    height, width = image_size
    unit = boxes / torch.tensor([width, height, width, height])
    return a**0.5 * (2 * unit - 1) * 2 + (1 - a) ** 0.5 * noise


def unscaled_corruption(boxes, image_size, a, noise):
    height, width = image_size
    unit = ops.box_convert(boxes, "xyxy", "cxcywh") / torch.tensor([width, height, width, height])
    return a**0.5 * unit + (1 - a) ** 0.5 * noise


def no_sqrt_corruption(boxes, image_size, a, noise):
    return (corrupt_boxes(boxes, image_size, 1.0, noise) * a + (1 - a) * noise)


@pytest.mark.parametrize("answer, hint", [
    (xyxy_corruption, "not the corners"),
    (unscaled_corruption, "to \\[-2, 2\\]"),
    (no_sqrt_corruption, "square roots"),
    (lambda b, s, a, n: corrupt_boxes(b, s, a, n)[:2], "one row of 4 numbers per box"),
])
def test_corruption_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.CHECKERS["corrupt_boxes"](answer)


@pytest.mark.parametrize("answer, hint", [
    (lambda x, s, t, f: x[s >= t], "keeps N boxes"),
    (lambda x, s, t, f: torch.where((s >= t)[:, None], f, x), "those below it are renewed"),
    (lambda x, s, t, f: torch.where((s > t)[:, None], x, f), "exactly the threshold stays"),
    (lambda x, s, t, f: f, "expected torch.where"),
])
def test_renewal_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.CHECKERS["renew"](answer)
