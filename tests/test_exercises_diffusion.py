"""The diffusion exercises: each accepts correct answers and names realistic mistakes."""

import pytest
import torch

from cvcourse import diffusion, exercises
from cvcourse.exercises import ExerciseFailed
from cvcourse.exercises import diffusion as diffusion_exercises


def test_the_three_checkers_are_registered():
    assert {"q_sample", "ddim_step", "guided_eps"} <= set(exercises.CHECKERS)


def failure_message(name, answer):
    with pytest.raises(ExerciseFailed) as failure:
        exercises.check(name, answer)
    return str(failure.value)


# ---------------------------------------------------------------------------------------------
# q_sample


def per_image(values):
    return values.reshape(-1, 1, 1, 1)


def q_sample_indexing(x0, t, noise, alpha_bar):
    a = per_image(alpha_bar[t])
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def q_sample_gather(x0, t, noise, alpha_bar):
    a = alpha_bar.gather(0, t)[:, None, None, None]
    return torch.lerp(torch.zeros_like(x0), x0, a.sqrt()) + torch.sqrt(1 - a) * noise


def per_step_alphas(alpha_bar):
    return alpha_bar / torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])


def test_q_sample_accepts_hand_written_solutions(capsys):
    assert exercises.check("q_sample", q_sample_indexing)
    assert exercises.check("q_sample", q_sample_gather)
    assert capsys.readouterr().out.splitlines() == ["✓ q_sample: all 3 cases match cvcourse.diffusion.q_sample"] * 2


def test_q_sample_cases_are_deterministic_and_tell_the_mistakes_apart():
    cases = diffusion_exercises.q_sample_cases()
    again = diffusion_exercises.q_sample_cases()
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[3], b[3]) for a, b in zip(cases, again))
    for _, x0, t, noise, schedule in cases:
        assert x0.shape[0] != x0.shape[-1]  # alpha_bar[t] of shape (B,) cannot broadcast silently
        right = diffusion.q_sample(schedule, x0, t, noise)
        assert torch.allclose(right, q_sample_indexing(x0, t, noise, schedule.alpha_bar.float()), atol=1e-6)
        assert not any(diffusion_exercises.close(wrong, right)
                       for wrong, _ in diffusion_exercises.q_sample_mistakes(x0, t, noise, schedule))
    assert 0 in cases[0][2] and cases[0][4].T - 1 in cases[0][2]


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, per_step_alphas(ab)),
         r"wrong x_t for 4 images .*: this noises x0 by a single step"),
        (lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, 1 - per_step_alphas(ab)),
         r"this noises x0 by a single step"),
        (lambda x0, t, noise, ab: per_image(ab[t]) * x0 + per_image(1 - ab[t]) * noise,
         r"are the variances .* scaled by standard deviations"),
        (lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, 1 - ab), r"the two coefficients are swapped"),
        (lambda x0, t, noise, ab: q_sample_indexing(x0, t - 1, noise, ab), r"off by one timestep"),
        (lambda x0, t, noise, ab: ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * noise,
         r"^q_sample raised RuntimeError on 4 images .*must match.*\nalpha_bar\[t\] holds one value per image"),
        (lambda x0, t, noise, ab: q_sample_indexing(x0, t, torch.randn_like(x0), ab),
         r"two calls with the same inputs gave different x_t: use the noise you are given"),
        (lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, ab.sqrt()), r"q\(x_t \| x_0\) is a Gaussian"),
        (lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, ab).flatten(1),
         r"should return shape \(4, 3, 6, 5\) on 4 images .* got \(4, 90\): the result is one value per pixel"),
        (lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, ab).numpy(),
         r"should return a torch.Tensor, got ndarray"),
    ],
)
def test_q_sample_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("q_sample", wrong_answer)


# ---------------------------------------------------------------------------------------------
# ddim_step


def ddim_eq12(x_t, eps, alpha_bar_t, alpha_bar_prev):
    x0_pred = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    return alpha_bar_prev.sqrt() * x0_pred + (1 - alpha_bar_prev).sqrt() * eps


def ddim_coefficients(x_t, eps, alpha_bar_t, alpha_bar_prev):
    """The same step, regrouped as one coefficient of x_t and one of eps."""
    ratio = (alpha_bar_prev / alpha_bar_t).sqrt()
    return ratio * x_t + ((1 - alpha_bar_prev).sqrt() - ratio * (1 - alpha_bar_t).sqrt()) * eps


def test_ddim_step_accepts_eq_12_and_a_regrouped_form(capsys):
    assert exercises.check("ddim_step", ddim_eq12)
    assert exercises.check("ddim_step", ddim_coefficients)
    assert capsys.readouterr().out.splitlines() == [
        "✓ ddim_step: all 3 cases match cvcourse.diffusion.ddim_step with eta = 0 and no clipping"] * 2


def test_ddim_cases_follow_the_course_sampler_and_tell_the_mistakes_apart():
    cases = diffusion_exercises.ddim_cases()
    assert all(torch.equal(a[1], b[1]) for a, b in zip(cases, diffusion_exercises.ddim_cases()))
    assert [alpha_bar_t.shape for _, _, _, alpha_bar_t, _, _ in cases] == [(), (4, 1, 1, 1), ()]
    for _, x_t, eps, alpha_bar_t, alpha_bar_prev, x_prev in cases:
        assert torch.allclose(x_prev, ddim_eq12(x_t, eps, alpha_bar_t, alpha_bar_prev), atol=1e-5)
    _, x_t, eps, alpha_bar_t, alpha_bar_prev, x_prev = cases[0]
    assert not any(diffusion_exercises.close(wrong, x_prev)
                   for wrong, _ in diffusion_exercises.ddim_mistakes(x_t, eps, alpha_bar_t, alpha_bar_prev))
    assert cases[2][4] == 1  # the last step lands on the clean image


def ddpm_posterior_mean(x_t, eps, alpha_bar_t, alpha_bar_prev):
    alpha_t = alpha_bar_t / alpha_bar_prev
    return (x_t - (1 - alpha_t) / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()


def x0_pred(x_t, eps, alpha_bar_t):
    return (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (ddpm_posterior_mean, r"wrong x_prev for 3 images .*: this is the mean of DDPM's posterior"),
        (lambda x_t, eps, a, a_prev: a_prev.sqrt() * x0_pred(x_t, eps, a),
         r"the 'direction pointing to x_t' is missing"),
        (lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a, a), r"the step returns x_t itself"),
        (lambda x_t, eps, a, a_prev: a.sqrt() * x0_pred(x_t, eps, a) + (1 - a_prev).sqrt() * eps,
         r"^wrong x_prev .*: alpha_bar_t appears where alpha_bar_prev belongs"),
        (lambda x_t, eps, a, a_prev: a_prev.sqrt() * x0_pred(x_t, eps, a) + (1 - a).sqrt() * eps,
         r"^wrong x_prev .*: alpha_bar_t appears where alpha_bar_prev belongs"),
        (lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a_prev, a_prev), r"the step returns x_t itself"),
        (lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a_prev, a), r"alpha_bar_t and alpha_bar_prev are exchanged"),
        (lambda x_t, eps, a, a_prev: ddim_eq12(x_t, -eps, a, a_prev) + 2 * (1 - a_prev).sqrt() * eps,
         r"the sign of the noise term in x0_pred is wrong"),
        (lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a, a_prev).clamp(-1, 1),
         r"DDIM's deterministic step \(Song et al. 2021, eq. 12 with sigma_t = 0, no clipping\)"),
        (lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a, a_prev)[:, 0],
         r"should return shape \(3, 2, 5, 4\) on 3 images .* got \(3, 5, 4\)"),
        (lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a.item(), a_prev.item()),
         r"^ddim_step raised AttributeError on 3 images \(2, 5, 4\) from t = 30"),
    ],
)
def test_ddim_step_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("ddim_step", wrong_answer)


def test_ddim_step_for_one_timestep_only_fails_on_per_image_alpha_bar_values():
    message = failure_message("ddim_step", lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a.flatten()[0],
                                                                                 a_prev.flatten()[0]))
    assert message.startswith("wrong x_prev for 4 images (1, 6, 6) at timesteps 40, 25, 9, 3")


# ---------------------------------------------------------------------------------------------
# guided_eps


def test_guided_eps_accepts_the_course_function_and_the_extrapolation_form(capsys):
    assert exercises.check("guided_eps", diffusion.guided_eps)
    assert exercises.check("guided_eps", lambda cond, uncond, w: cond + w * (cond - uncond))
    assert capsys.readouterr().out.splitlines() == [
        "✓ guided_eps: all 3 cases match cvcourse.diffusion.guided_eps, and w = 0 gives eps_cond"] * 2


def test_guided_eps_cases_end_with_no_guidance_and_tell_the_mistakes_apart():
    cases = diffusion_exercises.guided_eps_cases()
    assert [w for *_, w in cases] == [3.0, 0.5, 0.0]
    _, cond, uncond, w = cases[-1]
    assert torch.equal(diffusion.guided_eps(cond, uncond, w), cond)
    for _, cond, uncond, w in cases[:2]:
        right = diffusion.guided_eps(cond, uncond, w)
        assert not any(diffusion_exercises.close(wrong, right)
                       for wrong, _ in diffusion_exercises.guided_eps_mistakes(cond, uncond, w))


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (lambda cond, uncond, w: w * cond + (1 - w) * uncond,
         r"wrong guided eps for 2 predictions .* w = 3: this is the other convention.*Ho & Salimans 2022, eq. 6, "
         r"where w = 0 means no guidance"),
        (lambda cond, uncond, w: diffusion.guided_eps(uncond, cond, w), r"play each other's part"),
        (lambda cond, uncond, w: w * (cond - uncond), r"only the guidance direction scaled by w"),
        (lambda cond, uncond, w: diffusion.guided_eps(cond, uncond, w) + (w == 0) * uncond,
         r"wrong guided eps for 2 predictions .* w = 0, no guidance: with w = 0 there is no guidance"),
        (lambda cond, uncond, w: cond + w * (cond + uncond), r"extrapolate from the unconditional prediction"),
        (lambda cond, uncond, w: diffusion.guided_eps(cond, uncond, w).mean(0),
         r"should return shape \(2, 3, 4, 4\) .* got \(3, 4, 4\): the guided prediction has the shape of eps_cond"),
    ],
)
def test_guided_eps_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("guided_eps", wrong_answer)


# ---------------------------------------------------------------------------------------------
# all three


@pytest.mark.parametrize(
    "name, crashing, case",
    [
        ("q_sample", lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, ab) @ noise, "4 images"),
        ("ddim_step", lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a, a_prev) @ eps, r"3 images \(2, 5, 4\)"),
        ("guided_eps", lambda cond, uncond, w: diffusion.guided_eps(cond[0], uncond, w), r"2 predictions \(3, 4, 4\)"),
    ],
)
def test_a_crash_names_the_case(name, crashing, case):
    with pytest.raises(ExerciseFailed, match=rf"^{name} raised (RuntimeError|ValueError) on {case}"):
        exercises.check(name, crashing)


@pytest.mark.parametrize(
    "name, wrong_answers, answer_snippets",
    [
        ("q_sample",
         [lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, 1 - ab),
          lambda x0, t, noise, ab: q_sample_indexing(x0, t - 1, noise, ab),
          lambda x0, t, noise, ab: ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * noise,
          lambda x0, t, noise, ab: q_sample_indexing(x0, t, noise, ab.sqrt())],
         ["sqrt(alpha_bar[t])", "sqrt(1 - alpha_bar", "alpha_bar[t].sqrt()", "view(-1, 1, 1, 1)",
          "reshape(-1, 1, 1, 1)", "[:, None, None, None]"]),
        ("ddim_step",
         [ddpm_posterior_mean, lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a, a),
          lambda x_t, eps, a, a_prev: ddim_eq12(x_t, eps, a, a_prev).clamp(-1, 1)],
         ["sqrt(alpha_bar_prev) x0_pred", "sqrt(1 - alpha_bar_prev) eps", "(x_t - sqrt(1 - alpha_bar_t) eps)",
          "x0_pred + sqrt"]),
        ("guided_eps",
         [lambda cond, uncond, w: w * cond + (1 - w) * uncond, lambda cond, uncond, w: w * (cond - uncond),
          lambda cond, uncond, w: cond + w * (cond + uncond)],
         ["(1 + w)", "1 + w) eps_cond", "w * eps_uncond", "w eps_uncond", "eps_cond + w", "s = 1 + w"]),
    ],
)
def test_failures_never_give_the_answer(name, wrong_answers, answer_snippets):
    for wrong_answer in wrong_answers:
        message = failure_message(name, wrong_answer)
        assert not any(snippet in message for snippet in answer_snippets), message
