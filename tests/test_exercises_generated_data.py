"""The generated-training-data exercises (mask channels, seed summary): correct answers pass, mistakes are named."""

import math

import pytest
import torch
import torch.nn.functional as F

from cvcourse import exercises
from cvcourse.exercises import ExerciseFailed
from cvcourse.exercises.generated_data import SEED_CASES


def mask_channels(masks, num_classes):
    return F.one_hot(masks, num_classes + 1)[..., :num_classes].permute(0, 3, 1, 2).float()


def seed_summary(a, b):
    def summary(values):
        mean = sum(values) / len(values)
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    (mean_a, spread_a), (mean_b, spread_b) = summary(a), summary(b)
    error = math.sqrt(spread_a**2 / len(a) + spread_b**2 / len(b))
    return mean_a, spread_a, mean_b, spread_b, abs(mean_a - mean_b) > 2 * error


def street_flips(images, masks):
    return torch.cat([images, images.flip(-1)]), torch.cat([masks, masks.flip(-1)])


def test_correct_answers_pass(capsys):
    assert exercises.check("mask_channels", mask_channels)
    assert exercises.check("street_flips", street_flips)
    assert exercises.check("seed_summary", seed_summary)
    assert "✓ seed_summary" in capsys.readouterr().out


@pytest.mark.parametrize("answer, hint", [
    (lambda m, k: F.one_hot(m, k + 1)[..., :k].float(), "permute"),
    (lambda m, k: F.one_hot(m, k + 1).permute(0, 3, 1, 2).float(), "null class gets no channel"),
    (lambda m, k: F.one_hot(m).permute(0, 3, 1, 2).float(), "not the mask's largest value"),
    (lambda m, k: F.one_hot(m, k + 1)[..., :k].permute(0, 3, 1, 2), "float"),
    (lambda m, k: m[:, None].float(), "one-hot"),
])
def test_mask_channel_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("mask_channels", answer)


def population_spread(a, b):
    result = list(seed_summary(a, b))
    for index, values in ((1, a), (3, b)):
        mean = sum(values) / len(values)
        result[index] = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return tuple(result)


def variance(a, b):
    mean_a, spread_a, mean_b, spread_b, clear = seed_summary(a, b)
    return mean_a, spread_a**2, mean_b, spread_b**2, clear


def against_the_spreads(a, b):
    mean_a, spread_a, mean_b, spread_b, _ = seed_summary(a, b)
    return mean_a, spread_a, mean_b, spread_b, abs(mean_a - mean_b) > spread_a + spread_b


@pytest.mark.parametrize("answer, hint", [
    (population_spread, "n - 1"), (variance, "variance"), (against_the_spreads, "standard error"),
    (lambda a, b: seed_summary(a, b)[:4], r"\(mean_a, spread_a"),
])
def test_seed_summary_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("seed_summary", answer)


def test_the_cases_tell_a_spread_comparison_from_a_standard_error_one():
    verdicts = [seed_summary(a, b)[4] for _, a, b in SEED_CASES]
    assert any(verdicts) and not all(verdicts)
    assert any(seed_summary(a, b)[4] != against_the_spreads(a, b)[4] for _, a, b in SEED_CASES)


@pytest.mark.parametrize("answer, hint", [
    (lambda x, m: (torch.cat([x, x.flip(-2)]), torch.cat([m, m.flip(-2)])), "upside down"),
    (lambda x, m: (torch.cat([x, x.flip(1)]), torch.cat([m, m.flip(-1)])), "colour channels"),
    (lambda x, m: (torch.cat([x, x.flip(-1)]), torch.cat([m, m])), "flipped with its image"),
    (lambda x, m: (x.flip(-1), m.flip(-1)), "keep the originals"),
    (lambda x, m: (torch.cat([x.flip(-1), x]), torch.cat([m.flip(-1), m])), "originals first"),
    (lambda x, m: torch.cat([x, x.flip(-1)]), "two tensors"),
    (lambda x, m: (x, m), "mirrored left to right"),
])
def test_street_flip_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("street_flips", answer)
