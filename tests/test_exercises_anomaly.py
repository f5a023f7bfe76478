"""The anomaly exercises (partial jump, pixel anomaly map, image AUROC): correct answers pass, realistic mistakes are
named."""

import pytest
import torch

from cvcourse import exercises
from cvcourse.exercises import ExerciseFailed


def partial_jump(x0, t_lambda, noise, alpha_bar):
    return alpha_bar[t_lambda].sqrt() * x0 + (1 - alpha_bar[t_lambda]).sqrt() * noise


def pixel_anomaly_map(images, reconstructions):
    return (images - reconstructions).abs().mean(dim=1)


def image_auroc(scores, labels):
    anomalous, normal = scores[labels == 1], scores[labels == 0]
    return ((anomalous[:, None] > normal).float() + 0.5 * (anomalous[:, None] == normal).float()).mean().item()


def test_correct_answers_pass(capsys):
    assert exercises.check("partial_jump", partial_jump)
    assert exercises.check("pixel_anomaly_map", pixel_anomaly_map)
    assert exercises.check("image_auroc", image_auroc)
    from sklearn.metrics import roc_auc_score
    assert exercises.check("image_auroc", lambda s, y: roc_auc_score(y.numpy(), s.numpy()))
    out = capsys.readouterr().out
    assert "✓ partial_jump: all 3 cases match cvcourse.diffusion.q_sample" in out


@pytest.mark.parametrize("answer, hint", [
    (lambda x0, t, n, a: a[t] * x0 + (1 - a[t]) * n, "square roots"),
    (lambda x0, t, n, a: a[t - 1].sqrt() * x0 + (1 - a[t - 1]).sqrt() * n, "t_lambda - 1"),
    (lambda x0, t, n, a: (1 - a[t]).sqrt() * x0 + a[t].sqrt() * n, "swapped"),
    (lambda x0, t, n, a: x0 + (1 - a[t]).sqrt() * n, "shrink"),
    (lambda x0, t, n, a: x0[:1], "shape"),
])
def test_partial_jump_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("partial_jump", answer)


@pytest.mark.parametrize("answer, hint", [
    (lambda x, r: (x - r).mean(1), "signed"),
    (lambda x, r: (x - r).pow(2).mean(1), "squared error"),
    (lambda x, r: (x - r).abs().sum(1), "summed"),
    (lambda x, r: (x - r).abs().mean(1, keepdim=True), r"\(N, H, W\)"),
])
def test_pixel_map_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("pixel_anomaly_map", answer)


@pytest.mark.parametrize("answer, hint", [
    (lambda s, y: 1 - image_auroc(s, y), "swapped"),
    (lambda s, y: (s[y == 1][:, None] > s[y == 0]).float().mean().item(), "ties"),
    (lambda s, y: ((s > 0.5).long() == y).float().mean().item(), "accuracy"),
    (lambda s, y: "high", "one number"),
])
def test_auroc_mistakes_are_named(answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("image_auroc", answer)


def test_an_unfinished_stub_is_reported_as_not_done():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="not done yet"):
        exercises.check("partial_jump", stub)
    assert torch.is_tensor(partial_jump(torch.zeros(1), 0, torch.zeros(1), torch.ones(2)))
