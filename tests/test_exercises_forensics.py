"""The generated-image detection exercises (DIRE map, leak-free split): correct answers pass, realistic mistakes are
named."""

import pytest
import torch

from cvcourse import exercises
from cvcourse.exercises import ExerciseFailed


def dire_map(images, invert, reconstruct):
    return (images - reconstruct(invert(images))).abs()


def leak_free_split(images, test_fraction, seed):
    groups = {}
    for index, image in enumerate(images):
        groups.setdefault(image.numpy().tobytes(), []).append(index)
    order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed)).tolist()
    groups = [list(groups.values())[i] for i in order]
    test, train = [], []
    for group in groups:
        (test if len(test) < test_fraction * len(images) else train).extend(group)
    return train, test


def leaky_split(images, test_fraction, seed):
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    cut = int(test_fraction * len(images))
    return order[cut:], order[:cut]


def test_correct_answers_pass(capsys):
    assert exercises.check("dire_map", dire_map)
    assert exercises.check("leak_free_split", leak_free_split)
    assert "✓ leak_free_split" in capsys.readouterr().out


@pytest.mark.parametrize("answer, hint", [
    (lambda x, inv, rec: x - rec(inv(x)), "signed"),
    (lambda x, inv, rec: (x - rec(inv(x))) ** 2, "squared"),
    (lambda x, inv, rec: (x - rec(x)).abs(), "reconstruct\\(invert"),
    (lambda x, inv, rec: (x - inv(x)).abs(), "noise x_T"),
    (lambda x, inv, rec: (x - rec(inv(x))).abs().mean(1), "shape"),
])
def test_dire_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("dire_map", answer)


@pytest.mark.parametrize("answer, hint", [
    (leaky_split, "both train and test"),
    (lambda images, fraction, seed: (list(range(34)), list(range(34, 45))), "both train and test"),
    (lambda images, fraction, seed: (list(range(45)), []), "quarter|both"),
    (lambda images, fraction, seed: (list(range(20)), list(range(10, 45))), "exactly one side"),
    (lambda images, fraction, seed: list(range(45)), "two things"),
])
def test_leaky_splits_are_caught(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("leak_free_split", answer)
