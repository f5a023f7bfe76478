"""Sampling: DDPM's ancestral sampler (Ho et al. 2020) and DDIM (Song et al. 2021), one step and whole runs.

Every sampler takes a noise predictor ``model(x_t, t, labels) -> eps`` and a ``NoiseSchedule``, and returns x_0
in the data range the model was trained on ([-1, 1] for images). Both start from ``x_T`` at timestep
``t_start`` (by default fresh N(0, I) noise at the top timestep): starting from a noised image at an
intermediate ``t_start`` instead is SDEdit's and AnoDDPM's partial diffusion (see ``reconstruction``).

``clip_x0=True`` clips each step's prediction of x_0 to [-1, 1] and recomputes the noise from it, as the
reference implementations do (guided-diffusion's ``_predict_eps_from_xstart``; diffusers'
``use_clipped_model_output``): images stay in range during the early, very noisy steps. Turn it off for data
that is not in [-1, 1], such as the latents of latent diffusion.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from cvcourse.diffusion.forward import gaussian, predict_eps, predict_x0
from cvcourse.diffusion.guidance import EpsModel, eps_theta
from cvcourse.diffusion.schedules import NoiseSchedule, check_timestep


def ddpm_step(schedule: NoiseSchedule, x_t: torch.Tensor, t: int, eps: torch.Tensor, *,
              noise: torch.Tensor | None = None, clip_x0: bool = True) -> torch.Tensor:
    """One ancestral step x_t -> x_{t-1} (Algorithm 2, line 4): ``x_{t-1} = mu_tilde_t(x_t, x_0) + sigma_t z``.

    The mean is the posterior mean of eq. 7 at the predicted ``x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) /
    sqrt(alpha_bar_t)``; without clipping it equals Algorithm 2's ``(x_t - beta_t / sqrt(1 - alpha_bar_t) eps)
    / sqrt(alpha_t)``. The variance is ``sigma_t^2 = beta_tilde_t``, the posterior variance: the paper found it
    and ``beta_t`` equally good at T = 1000; ``beta_tilde`` is 0 at t = 0, so the last step adds no noise, and it
    makes this step exactly DDIM's with eta = 1 (Song et al. 2021, eq. 16). ``noise`` z defaults to N(0, I).
    """
    x0 = predict_x0(schedule, x_t, t, eps)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
    mean = (schedule.gather(schedule.mu_tilde_coef_x0, t, x_t) * x0
            + schedule.gather(schedule.mu_tilde_coef_xt, t, x_t) * x_t)
    if t == 0:
        return mean
    if noise is None:
        noise = torch.randn_like(x_t)
    return mean + schedule.gather(schedule.beta_tilde, t, x_t).sqrt() * noise


def ddim_sigma(schedule: NoiseSchedule, t: int, t_prev: int, eta: float) -> torch.Tensor:
    """``sigma_t(eta) = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)``.

    Song et al. 2021, eq. 16: eta = 0 is the deterministic DDIM, eta = 1 the DDPM posterior's standard deviation.
    """
    alpha_bar, alpha_bar_prev = (schedule.alpha_bar_at(s, schedule.alpha_bar) for s in (t, t_prev))
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)).sqrt()


def ddim_step(schedule: NoiseSchedule, x_t: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, *,
              eta: float = 0.0, noise: torch.Tensor | None = None, clip_x0: bool = True) -> torch.Tensor:
    """One DDIM step from timestep ``t`` to ``t_prev`` (Song et al. 2021, eq. 12)::

        x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t z

    "predicted x_0", "direction pointing to x_t" and random noise, with ``sigma_t(eta)`` of eq. 16. ``t_prev``
    may skip timesteps; ``t_prev = -1`` lands on x_0 (``alpha_bar = 1``). With ``eta = 0`` the step is
    deterministic and can also run backwards (``t_prev > t``), which is DDIM inversion.
    """
    _check_eta(eta)
    if t_prev == t or (t_prev > t and eta != 0):
        raise ValueError(f"t_prev must differ from t, and may exceed it (inversion) only with eta = 0; got t={t}, "
                         f"t_prev={t_prev}, eta={eta}.")
    x0 = predict_x0(schedule, x_t, t, eps)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = predict_eps(schedule, x_t, t, x0)  # the noise that, with the clipped x_0, gives x_t back
    alpha_bar_prev = schedule.alpha_bar_at(t_prev, schedule.alpha_bar)  # the coefficients in the schedule's float64
    sigma = ddim_sigma(schedule, t, t_prev, eta) if eta else alpha_bar_prev.new_zeros(())
    # sigma_t^2 <= 1 - alpha_bar_prev; at T - 1 (alpha_bar ~ 1e-9) rounding alone could take the root below zero
    direction = (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt()
    x_prev = alpha_bar_prev.sqrt().to(x_t.dtype) * x0 + direction.to(x_t.dtype) * eps
    if eta:
        x_prev = x_prev + sigma.to(x_t.dtype) * (torch.randn_like(x_t) if noise is None else noise)
    return x_prev


SPACINGS = ("trailing", "leading")


def ddim_timesteps(T: int, steps: int, t_start: int | None = None, spacing: str = "trailing") -> list[int]:
    """The timesteps DDIM visits, decreasing: ``steps`` evenly spaced in [0, T), or ``t_start`` and those below it.

    ``"trailing"`` spacing (the default; diffusers' ``timestep_spacing="trailing"``, Lin et al. 2024, section 3.3)
    starts at T - 1, where sampling starts from pure noise: ``ddim_timesteps(1000, 50)`` is 999, 979, ..., 19, and
    one step is [999]. ``"leading"`` spacing is Song et al. 2021's ``tau_i = floor(c i)`` with ``c = T / steps``
    (Appendix D.2): 980, 960, ..., 20, 0, which takes pure noise for the sample at 980, where the cosine schedule
    still leaves a signal of sqrt(alpha_bar) = 0.03 (and at 900, ten steps' top, 0.154; one step gives [0]: noise
    taken for an almost clean image). Inversion runs on the leading grid: with the cosine schedule the top step is
    degenerate (``beta = 0.999``, ``alpha_bar_T ~ 1e-9``), and predicting x_0 there divides the model's error by
    ``sqrt(alpha_bar_T)``; the sampler survives it by clipping x_0 to the data range, inversion (unclipped) does
    not. ``t_start`` (e.g. a partially noised image's timestep) goes first, followed by the grid's timesteps below
    it: DDIM's update can jump between any two timesteps.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, T] = [1, {T}] (at most one per timestep of the schedule), "
                         f"got {steps!r}; e.g. steps=50.")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}.")
    if spacing == "trailing":
        grid = [round(T - i * T / steps) - 1 for i in range(steps)]
    else:
        grid = [i * T // steps for i in reversed(range(steps))]
    if t_start is None:
        return grid
    return [check_timestep(t_start, T, "t_start")] + [t for t in grid if t < t_start]


@torch.no_grad()
def ddpm_sample(model: EpsModel, schedule: NoiseSchedule, shape: tuple[int, ...], *,
                labels: torch.Tensor | None = None, guidance_scale: float = 0.0,
                generator: torch.Generator | None = None, clip_x0: bool = True, x_T: torch.Tensor | None = None,
                t_start: int | None = None, progress: bool = False) -> torch.Tensor:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2): every timestep from ``t_start`` (default T - 1) down to 0.

    ``x_T`` is the sample at ``t_start`` (default N(0, I) noise of ``shape``); ``labels`` and ``guidance_scale``
    condition and guide each prediction (``guidance.eps_theta``). Put the model in ``eval()`` mode first.
    """
    x = _start(model, schedule, shape, x_T, t_start, generator)
    t_start = schedule.T - 1 if t_start is None else check_timestep(t_start, schedule.T, "t_start")
    for t in tqdm(range(t_start, -1, -1), disable=not progress, desc="DDPM", unit="step"):
        eps = eps_theta(model, x, t, labels, guidance_scale)
        noise = gaussian(x.shape, generator, x) if t > 0 else None
        x = ddpm_step(schedule, x, t, eps, noise=noise, clip_x0=clip_x0)
    return x


@torch.no_grad()
def ddim_sample(model: EpsModel, schedule: NoiseSchedule, shape: tuple[int, ...], *, steps: int = 50,
                eta: float = 0.0, labels: torch.Tensor | None = None, guidance_scale: float = 0.0,
                generator: torch.Generator | None = None, clip_x0: bool = True, x_T: torch.Tensor | None = None,
                t_start: int | None = None, spacing: str = "trailing", progress: bool = False) -> torch.Tensor:
    """DDIM sampling (Song et al. 2021): eq. 12 along ``ddim_timesteps(T, steps, t_start, spacing)``, then to x_0.

    ``eta = 0`` (default) is deterministic: the same ``x_T`` always gives the same image, which makes
    interpolation and inversion possible; ``eta = 1`` with ``steps = T`` is DDPM's sampler. ``x_T`` is the
    sample at ``t_start`` (default: N(0, I) noise of ``shape`` at the top of the timestep grid).
    """
    _check_eta(eta)
    timesteps = ddim_timesteps(schedule.T, steps, t_start, spacing)
    x = _start(model, schedule, shape, x_T, t_start, generator)
    for t, t_prev in tqdm(zip(timesteps, timesteps[1:] + [-1]), total=len(timesteps), disable=not progress,
                          desc="DDIM", unit="step"):
        eps = eps_theta(model, x, t, labels, guidance_scale)
        noise = gaussian(x.shape, generator, x) if eta else None
        x = ddim_step(schedule, x, t, t_prev, eps, eta=eta, noise=noise, clip_x0=clip_x0)
    return x


def _start(model: EpsModel, schedule: NoiseSchedule, shape: tuple[int, ...], x_T: torch.Tensor | None,
           t_start: int | None, generator: torch.Generator | None) -> torch.Tensor:
    """The sampler's starting point: ``x_T`` checked against ``shape``, or N(0, I) noise on the model's device."""
    shape = tuple(shape)
    if x_T is not None:
        if tuple(x_T.shape) != shape:
            raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape={shape} was asked for; pass x_T.shape.")
        return x_T
    if isinstance(t_start, int) and t_start < schedule.T - 1:
        raise ValueError(f"starting at t_start={t_start} < T - 1 needs the sample at that timestep: pass "
                         "x_T=q_sample(schedule, x0, t_start), or use partial_diffusion(model, schedule, x0, t_start).")
    if len(shape) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        raise ValueError(f"shape must be a batch shape of positive ints, e.g. (16, 1, 28, 28), got {shape}.")
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    like = parameter.detach() if parameter is not None and parameter.is_floating_point() else torch.empty(())
    return gaussian(shape, generator, like)


def _check_eta(eta: float) -> None:
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta >= 0:
        raise ValueError(f"eta must be a number >= 0, got {eta!r}; 0 is deterministic DDIM, 1 is DDPM-like.")
