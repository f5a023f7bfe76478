"""A diffusion model as a denoiser at a known noise level: "diffusion purification" (SDEdit, Meng et al. 2022; DDRM,
Kawar et al. 2022, for a known degradation).

An image with Gaussian noise, y = x_0 + sigma n with n ~ N(0, I) and y in the model's range [-1, 1], scaled by
sqrt(alpha_bar_t), is sqrt(alpha_bar_t) x_0 + sqrt(alpha_bar_t) sigma n: exactly a sample x_t of the forward process
(eq. 4 of Ho et al. 2020) when sqrt(alpha_bar_t) sigma = sqrt(1 - alpha_bar_t), that is when

    sigma^2 = (1 - alpha_bar_t) / alpha_bar_t.

The noisy image *is* the forward process at that t, up to its scale, so a model trained to denoise every t denoises
it: a few DDIM steps from t down to 0. Noise of standard deviation s on images in [0, 1] is sigma = 2 s in [-1, 1].
"""

from __future__ import annotations

import torch

from cvcourse.diffusion.guidance import EpsModel, eps_theta
from cvcourse.diffusion.samplers import ddim_step, ddim_timesteps
from cvcourse.diffusion.schedules import NoiseSchedule


def noise_levels(schedule: NoiseSchedule) -> torch.Tensor:
    """(T,) the noise level sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) of each timestep, increasing."""
    return ((1 - schedule.alpha_bar) / schedule.alpha_bar).sqrt()


def noise_level_timestep(schedule: NoiseSchedule, sigma: float) -> int:
    """The timestep whose noise level is closest to ``sigma`` (in the model's range [-1, 1])."""
    levels = noise_levels(schedule)
    low, high = levels[0].item(), levels[-1].item()
    if not low <= sigma <= high:
        raise ValueError(f"sigma = {sigma:g} lies outside the noise levels of the schedule's timesteps, [{low:.3g}, "
                         f"{high:.3g}] in the model's range [-1, 1] (noise of std s on [0, 1] images is sigma = 2 s); "
                         "a model cannot denoise a level it was not trained on.")
    return int((levels - sigma).abs().argmin())


@torch.no_grad()
def purify(model: EpsModel, schedule: NoiseSchedule, noisy: torch.Tensor, sigma: float, *,
           steps: int) -> torch.Tensor:
    """Denoise images ``noisy`` (N, C, H, W) in [-1, 1] that carry Gaussian noise of level ``sigma``: scale them to
    x_t at ``t = noise_level_timestep(schedule, sigma)``, then take ``steps`` deterministic DDIM steps (eta 0) on an
    even grid from t down to 0 (at most t + 1 of them)."""
    t = noise_level_timestep(schedule, sigma)
    x = schedule.sqrt_alpha_bar[t].to(noisy.device, noisy.dtype) * noisy
    timesteps = ddim_timesteps(t + 1, min(steps, t + 1))  # trailing spacing on [0, t]: starts at t
    for t_now, t_prev in zip(timesteps, timesteps[1:] + [-1]):
        x = ddim_step(schedule, x, t_now, t_prev, eps_theta(model, x, t_now))
    return x
