"""The DDPM exercises (L_simple and the ancestral step): each accepts correct answers and names realistic mistakes."""

import pytest
import torch

from cvcourse import diffusion, exercises
from cvcourse.exercises import ExerciseFailed
from cvcourse.exercises import ddpm as ddpm_exercises


def per_image(values, x):
    return values.reshape(-1, *[1] * (x.ndim - 1))


def l_simple(model, x0, t, noise, alpha_bar):
    a = per_image(alpha_bar[t], x0)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return ((model(x_t, t) - noise) ** 2).mean()


def l_simple_with_mse(model, x0, t, noise, alpha_bar):
    a = per_image(alpha_bar[t], x0)
    return torch.nn.functional.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t), noise)


def ancestral_step(x_t, eps, beta_t, alpha_bar_t, z):
    return (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / (1 - beta_t).sqrt() + beta_t.sqrt() * z


def test_both_checkers_are_registered_and_accept_hand_written_solutions(capsys):
    assert {"l_simple", "ancestral_step"} <= set(exercises.CHECKERS)
    assert exercises.check("l_simple", l_simple) and exercises.check("l_simple", l_simple_with_mse)
    assert exercises.check("ancestral_step", ancestral_step)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✓ l_simple: all 2 cases match the mean squared noise error of cvcourse.diffusion.diffusion_loss"
    assert out[2].startswith("✓ ancestral_step: all 3 cases match")


def test_the_l_simple_reference_is_the_package_loss_at_the_same_timesteps_and_noise(monkeypatch):
    _, x0, t, noise = ddpm_exercises.l_simple_cases()[0]
    monkeypatch.setattr(torch, "randint", lambda *args, **kwargs: t)  # diffusion_loss draws t and the noise itself
    monkeypatch.setattr(diffusion.forward, "gaussian", lambda *args: noise)
    model = lambda x_t, t, labels=None: ddpm_exercises.toy_model(x_t, t)  # noqa: E731
    expected = diffusion.diffusion_loss(model, ddpm_exercises.SCHEDULE, x0)
    alpha_bar = ddpm_exercises.SCHEDULE.alpha_bar.float()
    assert torch.allclose(l_simple(ddpm_exercises.toy_model, x0, t, noise, alpha_bar), expected)


def test_the_ancestral_reference_is_algorithm_2_and_the_mistakes_differ_from_it():
    for _, t, x_t, eps, z in ddpm_exercises.ancestral_cases():
        beta, alpha_bar = ddpm_exercises.SCHEDULE.betas[t].float(), ddpm_exercises.SCHEDULE.alpha_bar[t].float()
        right = ddpm_exercises.posterior_mean(t, x_t, eps) + beta.sqrt() * z
        assert torch.allclose(right, ancestral_step(x_t, eps, beta, alpha_bar, z), atol=1e-5)
        assert not any(ddpm_exercises.close(wrong, right)
                       for wrong, _ in ddpm_exercises.ancestral_mistakes(t, x_t, eps, z))


@pytest.mark.parametrize("wrong_answer, hint", [
    (lambda model, x0, t, noise, ab: ((model(l_x_t(x0, t, noise, ab), t) - x0) ** 2).mean(), "compared with the clean"),
    (lambda model, x0, t, noise, ab: ((model(x0, t) - noise) ** 2).mean(), "the network sees the clean image"),
    (lambda model, x0, t, noise, ab: ((model(l_x_t(x0, t, noise, ab), t) - noise) ** 2).sum(), "the sum of"),
    (lambda model, x0, t, noise, ab: (model(l_x_t(x0, t, noise, ab), t) - noise).abs().mean(), "mean absolute"),
    (lambda model, x0, t, noise, ab: ((model(l_x_t(x0, t, noise, ab), t) - noise) ** 2).flatten(1).mean(1),
     "one number"),
    (lambda model, x0, t, noise, ab: ((model(per_image(ab[t], x0) * x0 + noise, t) - noise) ** 2).mean(),
     "noise x0 to x_t with q_sample's formula"),
])
def test_l_simple_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("l_simple", wrong_answer)


def l_x_t(x0, t, noise, alpha_bar):
    a = per_image(alpha_bar[t], x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


@pytest.mark.parametrize("wrong_answer, hint", [
    (lambda x_t, eps, b, ab, z: (x_t - b / (1 - ab).sqrt() * eps) / (1 - b).sqrt(), "only the mean"),
    (lambda x_t, eps, b, ab, z: (x_t - b / (1 - ab).sqrt() * eps) / (1 - b).sqrt() + b * z, "by the variance"),
    (lambda x_t, eps, b, ab, z: (x_t - b / (1 - ab).sqrt() * eps) / ab.sqrt() + b.sqrt() * z, "sqrt\\(alpha_bar_t\\)"),
    (lambda x_t, eps, b, ab, z: (x_t - b / (1 - ab) * eps) / (1 - b).sqrt() + b.sqrt() * z, "over the standard"),
    (lambda x_t, eps, b, ab, z: (x_t + b / (1 - ab).sqrt() * eps) / (1 - b).sqrt() + b.sqrt() * z, "is added"),
    (lambda x_t, eps, b, ab, z: x_t - eps, "Algorithm 2, line 4"),
])
def test_ancestral_step_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("ancestral_step", wrong_answer)
