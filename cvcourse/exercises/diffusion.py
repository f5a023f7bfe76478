"""Diffusion exercises: the forward process's q_sample, one deterministic DDIM step, classifier-free guidance.

Each checker runs the student's function on deterministic cases, compares it with the course's implementation
(``cvcourse.diffusion``: ``q_sample``, ``ddim_step`` with ``eta = 0`` and no clipping, ``guided_eps``) on a
``NoiseSchedule`` built from the same betas, and recognises the usual mistakes by recomputing them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cvcourse import diffusion
from cvcourse.diffusion import NoiseSchedule
from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.exercises.generative import close, returned_tensor

SAME_SHAPE_HINT = "the result is one value per pixel, so it has the shape of x_t"

# ---------------------------------------------------------------------------------------------
# q_sample(x0 (B, C, H, W), t (B,), noise (B, C, H, W), alpha_bar (T,)) -> x_t

BROADCAST_HINT = ("alpha_bar[t] holds one value per image, shape (B,), and broadcasting lines it up with the last "
                  "dimension of x0 (W), not the first: give it singleton dimensions for (C, H, W)")


def q_sample_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, NoiseSchedule]]:
    """Deterministic (description, x0, t, noise, schedule), with B never equal to W and t = 0 and T - 1 included;
    short schedules, whose large betas make neighbouring alpha_bar values far apart."""
    generator = torch.Generator().manual_seed(0)
    cases = [
        ("4 images (3, 6, 5) at timesteps 0, 12, 30, 49 of a linear schedule with T = 50", (4, 3, 6, 5),
         [0, 12, 30, 49], NoiseSchedule.linear(50, beta_start=2e-3, beta_end=0.4)),
        ("2 images (1, 7, 3) at timesteps 19 and 5 of a cosine schedule with T = 20", (2, 1, 7, 3), [19, 5],
         NoiseSchedule.cosine(20)),
        ("3 images (2, 4, 4) all at timestep 25 of a linear schedule with T = 50", (3, 2, 4, 4), [25] * 3,
         NoiseSchedule.linear(50, beta_start=2e-3, beta_end=0.4)),
    ]
    return [(case, 2 * torch.rand(shape, generator=generator) - 1, torch.tensor(t),
             torch.randn(shape, generator=generator), schedule) for case, shape, t, schedule in cases]


def noised(x0: torch.Tensor, noise: torch.Tensor, signal_variance: torch.Tensor,
           noise_variance: torch.Tensor) -> torch.Tensor:
    """``sqrt(signal_variance) x0 + sqrt(noise_variance) noise``, with one variance of each per image."""
    per_image = (-1, *[1] * (x0.ndim - 1))
    return (signal_variance.float().sqrt().reshape(per_image) * x0
            + noise_variance.float().sqrt().reshape(per_image) * noise)


def q_sample_mistakes(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                      schedule: NoiseSchedule) -> list[tuple[torch.Tensor, str]]:
    """The x_t each usual mistake gives, with its hint."""
    alpha_bar, alphas = schedule.alpha_bar[t], schedule.alphas[t]
    per_step = ("this noises x0 by a single step: alpha_t (and beta_t = 1 - alpha_t) belong to q(x_t | x_{t-1}); "
                "the jump from x_0 straight to x_t (Ho et al. 2020, eq. 4) uses the cumulative product alpha_bar_t")
    return [
        (noised(x0, noise, alphas, 1 - alphas), per_step),
        (noised(x0, noise, 1 - alphas, alphas), per_step),
        (noised(x0, noise, alpha_bar**2, (1 - alpha_bar) ** 2),
         ("alpha_bar_t and 1 - alpha_bar_t are the variances of the signal and of the noise in x_t, but x0 and "
          "the noise are scaled by standard deviations")),
        (noised(x0, noise, 1 - alpha_bar, alpha_bar),
         ("the two coefficients are swapped: at t = 0 alpha_bar is close to 1, and x_t should be almost the clean "
          "image, not almost pure noise")),
        (noised(x0, noise, schedule.alpha_bar[t - 1], 1 - schedule.alpha_bar[t - 1]),
         ("off by one timestep: code counts timesteps from 0 (the paper from 1), so alpha_bar[t] already belongs to "
          "timestep t, and alpha_bar[0] includes the first noising step; t - 1 even wraps around to the last "
          "timestep at t = 0")),
    ]


def q_sample_hint(got: torch.Tensor, answer: Callable[..., torch.Tensor], case: str, x0: torch.Tensor,
                  t: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule) -> str:
    """Name the mistake that gives ``got``, or give a general hint."""
    hint = next((hint for wrong, hint in q_sample_mistakes(x0, t, noise, schedule) if close(got, wrong)), None)
    if hint is not None:
        return hint
    again = call_answer("q_sample", answer, case, x0.clone(), t.clone(), noise.clone(), schedule.alpha_bar.float())
    if not isinstance(again, torch.Tensor) or not close(got, again.detach().cpu().float()):
        return ("two calls with the same inputs gave different x_t: use the noise you are given instead of drawing "
                "new noise (torch.randn...), so that the training loss can compare the network's prediction with it")
    return ("q(x_t | x_0) is a Gaussian (Ho et al. 2020, eq. 4): scale x0 so that its mean is right and the given "
            "noise to its standard deviation, both read from alpha_bar at each image's own timestep")


@checker("q_sample")
def check_q_sample(answer: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare with ``cvcourse.diffusion.q_sample`` on a NoiseSchedule of the same betas (Ho et al. 2020, eq. 4)."""
    cases = q_sample_cases()
    for case, x0, t, noise, schedule in cases:
        try:
            result = call_answer("q_sample", answer, case, x0.clone(), t.clone(), noise.clone(),
                                 schedule.alpha_bar.float())
        except ExerciseFailed as failure:
            if "must match the size" not in str(failure):
                raise
            raise ExerciseFailed(f"{failure}\n{BROADCAST_HINT}") from failure
        got = returned_tensor(result, "q_sample", case, x0.shape, lambda shape: SAME_SHAPE_HINT)
        if not close(got, diffusion.q_sample(schedule, x0, t, noise)):
            raise ExerciseFailed(f"wrong x_t for {case}: {q_sample_hint(got, answer, case, x0, t, noise, schedule)}")
    return f"all {len(cases)} cases match cvcourse.diffusion.q_sample"


# ---------------------------------------------------------------------------------------------
# ddim_step(x_t, eps, alpha_bar_t, alpha_bar_prev) -> x_prev, with eta = 0

DDIM_SCHEDULE = NoiseSchedule.linear(50, beta_start=2e-3, beta_end=0.4)
A_T_FOR_A_PREV = ("alpha_bar_t appears where alpha_bar_prev belongs: once x_0 is predicted, the step moves it to the "
                  "previous, less noisy timestep, whose alpha_bar is alpha_bar_prev")


def ddim_case(description: str, generator: torch.Generator, shape: tuple[int, ...], t: int | list[int],
              t_prev: int | list[int]) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                torch.Tensor]:
    """(description, x_t, eps, alpha_bar_t, alpha_bar_prev, x_prev of ``ddim_step``): scalar alpha_bar values for
    int timesteps, (B, 1, 1, 1) ones for one timestep per image."""
    x_t, eps = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    if isinstance(t, int) and isinstance(t_prev, int):
        x_prev = diffusion.ddim_step(DDIM_SCHEDULE, x_t, t, t_prev, eps, clip_x0=False)
        return (description, x_t, eps, DDIM_SCHEDULE.alpha_bar_at(t, x_t), DDIM_SCHEDULE.alpha_bar_at(t_prev, x_t),
                x_prev)
    x_prev = torch.cat([diffusion.ddim_step(DDIM_SCHEDULE, x_t[i:i + 1], step, prev, eps[i:i + 1], clip_x0=False)
                        for i, (step, prev) in enumerate(zip(t, t_prev))])
    alpha_bar_t, alpha_bar_prev = (torch.stack([DDIM_SCHEDULE.alpha_bar_at(s, x_t) for s in steps]).reshape(-1, 1, 1, 1)
                                   for steps in (t, t_prev))
    return description, x_t, eps, alpha_bar_t, alpha_bar_prev, x_prev


def ddim_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Deterministic (description, x_t, eps, alpha_bar_t, alpha_bar_prev, x_prev) on a linear schedule, T = 50."""
    generator = torch.Generator().manual_seed(0)
    return [
        ddim_case("3 images (2, 5, 4) from t = 30 to t_prev = 20 (scalar alpha_bar values)", generator,
                  (3, 2, 5, 4), 30, 20),
        ddim_case("4 images (1, 6, 6) at timesteps 40, 25, 9, 3 stepping to 30, 15, 0, -1 (alpha_bar values of "
                  "shape (4, 1, 1, 1))", generator, (4, 1, 6, 6), [40, 25, 9, 3], [30, 15, 0, -1]),
        ddim_case("the last step, from t = 10 to the clean image (alpha_bar_prev = 1)", generator, (2, 3, 4, 4),
                  10, -1),
    ]


def ddim_variant(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_x0: torch.Tensor, alpha_bar_signal: torch.Tensor,
                 alpha_bar_noise: torch.Tensor, *, eps_sign: float = -1.0, direction: bool = True) -> torch.Tensor:
    """Eq. 12 with sigma = 0, built from the given alpha_bar in each place, sign and terms: the mistakes' recipe."""
    x0_pred = (x_t + eps_sign * (1 - alpha_bar_x0).sqrt() * eps) / alpha_bar_x0.sqrt()
    return alpha_bar_signal.sqrt() * x0_pred + direction * (1 - alpha_bar_noise).sqrt() * eps


def ddim_mistakes(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor,
                  alpha_bar_prev: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """The x_prev each usual mistake gives, with its hint."""
    alpha_t = alpha_bar_t / alpha_bar_prev
    return [
        ((x_t - (1 - alpha_t) / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt(),
         ("this is the mean of DDPM's posterior q(x_prev | x_t, x_0) (Ho et al. 2020, Algorithm 2 without its noise), "
          "a different step: DDIM's deterministic one (Song et al. 2021, eq. 12 with sigma_t = 0) is built from the "
          "'predicted x_0' and the 'direction pointing to x_t'")),
        (ddim_variant(x_t, eps, alpha_bar_t, alpha_bar_prev, alpha_bar_prev, direction=False),
         ("only the 'predicted x_0' term of eq. 12: the 'direction pointing to x_t' is missing, so x_prev holds no "
          "noise at all, although alpha_bar_prev < 1 says it should")),
        (x_t,
         ("the step returns x_t itself: x_0 is predicted and placed back with the same alpha_bar, but it is predicted "
          "at x_t's own timestep (alpha_bar_t) and placed at the previous, less noisy one (alpha_bar_prev)")),
        (ddim_variant(x_t, eps, alpha_bar_t, alpha_bar_t, alpha_bar_prev), A_T_FOR_A_PREV),
        (ddim_variant(x_t, eps, alpha_bar_t, alpha_bar_prev, alpha_bar_t), A_T_FOR_A_PREV),
        (ddim_variant(x_t, eps, alpha_bar_prev, alpha_bar_t, alpha_bar_t),
         ("alpha_bar_t and alpha_bar_prev are exchanged: this steps from t_prev to t, towards more noise (DDIM "
          "inversion); x_0 is predicted at x_t's own timestep, alpha_bar_t")),
        (ddim_variant(x_t, eps, alpha_bar_t, alpha_bar_prev, alpha_bar_prev, eps_sign=1.0),
         ("the sign of the noise term in x0_pred is wrong: predicting x_0 removes the noise from x_t; solve "
          "x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps for x_0 again")),
    ]


def ddim_hint(got: torch.Tensor, x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor,
              alpha_bar_prev: torch.Tensor) -> str:
    """Name the mistake that gives ``got``, or give a general hint."""
    hint = next((hint for wrong, hint in ddim_mistakes(x_t, eps, alpha_bar_t, alpha_bar_prev) if close(got, wrong)),
                None)
    if hint is not None:
        return hint
    return ("DDIM's deterministic step (Song et al. 2021, eq. 12 with sigma_t = 0, no clipping): predict x_0 from x_t "
            "and eps at alpha_bar_t, then place it at alpha_bar_prev with the same eps as the 'direction pointing "
            "to x_t'")


@checker("ddim_step")
def check_ddim_step(answer: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare with ``cvcourse.diffusion.ddim_step(..., eta=0, clip_x0=False)`` on the same timesteps."""
    cases = ddim_cases()
    for case, x_t, eps, alpha_bar_t, alpha_bar_prev, x_prev in cases:
        result = call_answer("ddim_step", answer, case, x_t.clone(), eps.clone(), alpha_bar_t.clone(),
                             alpha_bar_prev.clone())
        got = returned_tensor(result, "ddim_step", case, x_t.shape, lambda shape: SAME_SHAPE_HINT)
        if not close(got, x_prev):
            raise ExerciseFailed(f"wrong x_prev for {case}: {ddim_hint(got, x_t, eps, alpha_bar_t, alpha_bar_prev)}")
    return f"all {len(cases)} cases match cvcourse.diffusion.ddim_step with eta = 0 and no clipping"


# ---------------------------------------------------------------------------------------------
# guided_eps(eps_cond, eps_uncond, w) -> eps_tilde


def guided_eps_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    """Deterministic (description, eps_cond, eps_uncond, w); w = 0 last, where some mistakes coincide."""
    generator = torch.Generator().manual_seed(0)
    cases = [("2 predictions (3, 4, 4) with w = 3", (2, 3, 4, 4), 3.0),
             ("1 prediction (1, 5, 5) with w = 0.5", (1, 1, 5, 5), 0.5),
             ("2 predictions (3, 4, 4) with w = 0, no guidance", (2, 3, 4, 4), 0.0)]
    return [(case, torch.randn(shape, generator=generator), torch.randn(shape, generator=generator), w)
            for case, shape, w in cases]


def guided_eps_mistakes(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> list[tuple[torch.Tensor, str]]:
    """The guided predictions each usual mistake gives, with its hint."""
    return [
        (w * eps_cond + (1 - w) * eps_uncond,
         ("this is the other convention, whose scale is 1 for no guidance (the guidance_scale of diffusers and "
          "Stable Diffusion); the course follows Ho & Salimans 2022, eq. 6, where w = 0 means no guidance: the "
          "plain conditional prediction")),
        ((1 + w) * eps_uncond - w * eps_cond,
         ("eps_cond and eps_uncond play each other's part: guidance extrapolates from the unconditional prediction "
          "past the conditional one, towards the label, not away from it")),
        (w * eps_cond - w * eps_uncond,
         ("this is only the guidance direction scaled by w: the conditional prediction itself is missing, so w = 0 "
          "would give zero instead of the conditional model's prediction")),
    ]


def guided_eps_hint(got: torch.Tensor, eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> str:
    """Name the mistake that gives ``got``, or a property it breaks, or give a general hint."""
    hint = next((hint for wrong, hint in guided_eps_mistakes(eps_cond, eps_uncond, w) if close(got, wrong)), None)
    if hint is not None:
        return hint
    if w == 0:
        return "with w = 0 there is no guidance, and the result should be the conditional prediction eps_cond itself"
    return ("Ho & Salimans 2022, eq. 6: extrapolate from the unconditional prediction through the conditional one, "
            "further the larger w, with w = 0 giving the conditional prediction")


@checker("guided_eps")
def check_guided_eps(answer: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    """Compare with ``cvcourse.diffusion.guided_eps`` (Ho & Salimans 2022, eq. 6), w = 0 included."""
    cases = guided_eps_cases()
    for case, eps_cond, eps_uncond, w in cases:
        result = call_answer("guided_eps", answer, case, eps_cond.clone(), eps_uncond.clone(), w)
        got = returned_tensor(result, "guided_eps", case, eps_cond.shape,
                              lambda shape: "the guided prediction has the shape of eps_cond")
        if not close(got, diffusion.guided_eps(eps_cond, eps_uncond, w)):
            raise ExerciseFailed(f"wrong guided eps for {case}: {guided_eps_hint(got, eps_cond, eps_uncond, w)}")
    return f"all {len(cases)} cases match cvcourse.diffusion.guided_eps, and w = 0 gives eps_cond"
