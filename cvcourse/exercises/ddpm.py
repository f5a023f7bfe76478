"""DDPM exercises: the training loss L_simple and one ancestral sampling step, written out.

Each checker runs the student's function on deterministic cases and compares it with the course's implementation:
``l_simple`` with :func:`cvcourse.diffusion.q_sample` and the mean squared noise error of ``diffusion_loss`` (Ho et
al. 2020, eq. 14, Algorithm 1), ``ancestral_step`` with the posterior mean of :func:`cvcourse.diffusion.ddpm_step`
(unclipped) plus ``sqrt(beta_t) z``, Algorithm 2's line 4 with sigma_t^2 = beta_t. The usual mistakes are recognised
by recomputing them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cvcourse import diffusion
from cvcourse.diffusion import NoiseSchedule
from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.exercises.generative import close, returned_tensor

SCHEDULE = NoiseSchedule.linear(50, beta_start=2e-3, beta_end=0.4)

# ---------------------------------------------------------------------------------------------
# l_simple(model, x0, t, noise, alpha_bar) -> the mean over images and pixels of (model(x_t, t) - noise)^2


def toy_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed stand-in for the noise predictor: any function of x_t and t will do to check a loss."""
    return 0.5 * x_t.flip(-1) + 0.02 * t.float().reshape(-1, *[1] * (x_t.ndim - 1))


def l_simple_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Deterministic (description, x0, t, noise) on ``SCHEDULE``."""
    generator = torch.Generator().manual_seed(1)
    cases = [("4 images (1, 6, 5) at timesteps 0, 10, 30, 49", (4, 1, 6, 5), [0, 10, 30, 49]),
             ("2 images (3, 4, 4) at timesteps 7 and 44", (2, 3, 4, 4), [7, 44])]
    return [(case, 2 * torch.rand(shape, generator=generator) - 1, torch.tensor(t),
             torch.randn(shape, generator=generator)) for case, shape, t in cases]


def l_simple_mistakes(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """The loss each usual mistake gives, with its hint."""
    x_t = diffusion.q_sample(SCHEDULE, x0, t, noise)
    return [
        ((toy_model(x_t, t) - x0).pow(2).mean(),
         ("the network is compared with the clean image x0: in L_simple (Ho et al. 2020, eq. 14) it predicts the "
          "noise that was added, and the target is that noise")),
        ((toy_model(x0, t) - noise).pow(2).mean(),
         "the network sees the clean image x0: it must see the noised x_t, built from x0, t and the noise"),
        ((toy_model(x_t, t) - noise).pow(2).sum(),
         ("this is the sum of the squared errors: L_simple is their mean, so that the loss does not grow with the "
          "batch or the image size")),
        ((toy_model(x_t, t) - noise).abs().mean(), "this is the mean absolute error: L_simple squares the error"),
    ]


@checker("l_simple")
def check_l_simple(answer: Callable[..., torch.Tensor]) -> str:
    """Compare with the mean squared error between ``toy_model(q_sample(x0, t, noise), t)`` and ``noise``."""
    cases = l_simple_cases()
    for case, x0, t, noise in cases:
        result = call_answer("l_simple", answer, case, toy_model, x0.clone(), t.clone(), noise.clone(),
                             SCHEDULE.alpha_bar.float())
        got = returned_tensor(result, "l_simple", case, torch.Size([]),
                              lambda shape: "the loss is one number (a 0-d tensor): average over images and pixels")
        expected = (toy_model(diffusion.q_sample(SCHEDULE, x0, t, noise), t) - noise).pow(2).mean()
        if not close(got, expected):
            hint = next((hint for wrong, hint in l_simple_mistakes(x0, t, noise) if close(got, wrong)),
                        "noise x0 to x_t with q_sample's formula, ask the model for the noise at (x_t, t), and "
                        "average the squared difference to the noise that was added")
            raise ExerciseFailed(f"wrong loss for {case}: {hint}")
    return f"all {len(cases)} cases match the mean squared noise error of cvcourse.diffusion.diffusion_loss"


# ---------------------------------------------------------------------------------------------
# ancestral_step(x_t, eps, beta_t, alpha_bar_t, z) -> x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps)
#                                                               / sqrt(1 - beta_t) + sqrt(beta_t) z


def ancestral_cases() -> list[tuple[str, int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Deterministic (description, t, x_t, eps, z) on ``SCHEDULE``."""
    generator = torch.Generator().manual_seed(2)
    cases = [("3 images (1, 5, 4) at t = 40", 40, (3, 1, 5, 4)), ("2 images (3, 4, 4) at t = 12", 12, (2, 3, 4, 4)),
             ("1 image (1, 6, 6) at t = 1", 1, (1, 1, 6, 6))]
    return [(case, t, *(torch.randn(shape, generator=generator) for _ in range(3))) for case, t, shape in cases]


def posterior_mean(t: int, x_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Algorithm 2's mean: ``cvcourse.diffusion.ddpm_step`` without clipping and without noise."""
    return diffusion.ddpm_step(SCHEDULE, x_t, t, eps, noise=torch.zeros_like(x_t), clip_x0=False)


def ancestral_mistakes(t: int, x_t: torch.Tensor, eps: torch.Tensor, z: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """The x_{t-1} each usual mistake gives, with its hint."""
    beta, alpha_bar = SCHEDULE.betas[t].float(), SCHEDULE.alpha_bar[t].float()
    mean = posterior_mean(t, x_t, eps)
    return [
        (mean, ("this is only the mean: Algorithm 2 adds fresh noise sigma_t z at every step but the last, which is "
                "what makes the sampler stochastic")),
        (mean + beta * z, "the noise is scaled by the variance beta_t: scale z by the standard deviation sigma_t"),
        ((x_t - beta / (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt() + beta.sqrt() * z,
         ("the division uses sqrt(alpha_bar_t): one step back divides by the single step's sqrt(alpha_t) = "
          "sqrt(1 - beta_t)")),
        ((x_t - beta / (1 - alpha_bar) * eps) / (1 - beta).sqrt() + beta.sqrt() * z,
         "the noise coefficient is beta_t / (1 - alpha_bar_t): it is beta_t over the standard deviation, its root"),
        ((x_t + beta / (1 - alpha_bar).sqrt() * eps) / (1 - beta).sqrt() + beta.sqrt() * z,
         "the predicted noise is added: the step removes it from x_t"),
    ]


@checker("ancestral_step")
def check_ancestral_step(answer: Callable[..., torch.Tensor]) -> str:
    """Compare with ``ddpm_step``'s posterior mean (unclipped) plus ``sqrt(beta_t) z`` (Algorithm 2, line 4)."""
    cases = ancestral_cases()
    for case, t, x_t, eps, z in cases:
        beta, alpha_bar = SCHEDULE.betas[t].float(), SCHEDULE.alpha_bar[t].float()
        result = call_answer("ancestral_step", answer, case, x_t.clone(), eps.clone(), beta.clone(), alpha_bar.clone(),
                             z.clone())
        got = returned_tensor(result, "ancestral_step", case, x_t.shape,
                              lambda shape: "x_{t-1} has one value per pixel, the shape of x_t")
        if not close(got, posterior_mean(t, x_t, eps) + beta.sqrt() * z):
            hint = next((hint for wrong, hint in ancestral_mistakes(t, x_t, eps, z) if close(got, wrong)),
                        "Algorithm 2, line 4: remove the scaled predicted noise from x_t, divide by sqrt(alpha_t), "
                        "add sigma_t z with sigma_t = sqrt(beta_t)")
            raise ExerciseFailed(f"wrong x_(t-1) for {case}: {hint}")
    return (f"all {len(cases)} cases match the posterior mean of cvcourse.diffusion.ddpm_step plus sqrt(beta_t) z "
            "(Algorithm 2)")
