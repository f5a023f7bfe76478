"""Diffusion models' noise predictors as denoisers of images in [0, 1], and a direct denoiser made of the same parts.

:func:`denoise_images` is purification (:func:`cvcourse.diffusion.purification.purify`; SDEdit, Meng et al. 2022;
DDRM, Kawar et al. 2022) for images in [0, 1] with noise of a known standard deviation ``s``: mapped to [-1, 1] the
noise is ``sigma = 2 s``, the image is the forward process at the timestep of that noise level, and DDIM steps from
there down to t = 0 denoise it.

A *direct* denoiser (DnCNN, Zhang et al. 2017) is a network trained with the MSE to map noisy images to clean ones,
only at the noise levels it will meet. The same U-Net and the same loss give one: a diffusion model trained only on
the timesteps whose noise levels cover those of the degradations (:func:`timestep_window`), and applied with one
step, a single prediction of x_0 (``purify(..., steps=1)``). Its eps-MSE at timestep t is ``SNR_t`` times the MSE of
its x_0 (eq. 4 of Ho et al. 2020): a direct denoiser's loss, weighted per noise level. Only the timesteps it draws
differ from the diffusion model's, and :func:`window_schedule` makes them a schedule of their own, so the usual
training (:func:`cvcourse.diffusion.training.train_diffusion`) and purification run on it unchanged.
"""

from __future__ import annotations

import torch

from cvcourse.diffusion.forward import to_diffusion_range, to_image_range
from cvcourse.diffusion.guidance import EpsModel
from cvcourse.diffusion.purification import noise_levels, purify
from cvcourse.diffusion.schedules import NoiseSchedule


def timestep_window(schedule: NoiseSchedule, sigma_low: float, sigma_high: float) -> tuple[int, int]:
    """``(t_low, t_high)``: the fewest consecutive timesteps whose noise levels (``noise_levels``, in [-1, 1]) cover
    [``sigma_low``, ``sigma_high``]: t_low the last at or below ``sigma_low``, t_high the first at or above
    ``sigma_high`` (the first and last timestep where the schedule ends sooner)."""
    if not 0 < sigma_low <= sigma_high:
        raise ValueError(f"expected noise levels 0 < sigma_low <= sigma_high, got {sigma_low!r} and {sigma_high!r}; "
                         "noise of std s on [0, 1] images is sigma = 2 s.")
    levels = noise_levels(schedule)
    t_low = int(torch.searchsorted(levels, torch.tensor(sigma_low, dtype=levels.dtype), right=True)) - 1
    t_high = int(torch.searchsorted(levels, torch.tensor(sigma_high, dtype=levels.dtype)))
    return max(t_low, 0), min(t_high, schedule.T - 1)


def window_schedule(schedule: NoiseSchedule, t_low: int, t_high: int) -> NoiseSchedule:
    """The timesteps ``t_low..t_high`` of ``schedule`` as a schedule of their own: its timestep k has the noise of
    ``schedule``'s t_low + k (the same ``alpha_bar``). Its first beta is ``1 - alpha_bar_{t_low}``, one jump from the
    clean image to t_low; the next are ``schedule``'s ``beta_{t_low + 1}..beta_{t_high}``."""
    if not 0 <= t_low <= t_high < schedule.T:
        raise ValueError(f"the window needs 0 <= t_low <= t_high < T = {schedule.T}, got {t_low} and {t_high}.")
    first = (1 - schedule.alpha_bar[t_low]).reshape(1)
    return NoiseSchedule(torch.cat([first, schedule.betas[t_low + 1:t_high + 1]]).cpu())


@torch.no_grad()
def denoise_images(model: EpsModel, schedule: NoiseSchedule, images: torch.Tensor, noise_std: float, *, steps: int,
                   batch_size: int = 16) -> torch.Tensor:
    """``images`` (N, C, H, W) in [0, 1] with Gaussian noise of standard deviation ``noise_std`` denoised by ``steps``
    DDIM steps of ``purify`` (1: one prediction of x_0), ``batch_size`` images at a time on the model's device;
    returned on the images' device, in [0, 1]."""
    device = next(model.parameters()).device
    schedule = schedule.to(device)
    restored = [to_image_range(purify(model, schedule, to_diffusion_range(chunk.to(device)), 2 * noise_std,
                                      steps=steps)) for chunk in images.split(batch_size)]
    return torch.cat(restored).to(images.device)
