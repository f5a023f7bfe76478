"""Diffusion models: noise schedules, the forward process and its loss, DDPM and DDIM sampling, DDIM inversion and
partial diffusion, RePaint inpainting, classifier-free guidance, autoguidance and latent diffusion (chapters 05 and 06).

The schedule is an object of its own, separate from the network (as diffusers' schedulers are): every
function takes a ``NoiseSchedule`` and a noise predictor ``model(x_t, t, labels) -> eps``, such as
:class:`cvcourse.models.DiffusionUNet`. Timesteps are indices in [0, T); data are in [-1, 1].
"""

from cvcourse.diffusion.autoguidance import AutoGuided
from cvcourse.diffusion.denoisers import denoise_images, timestep_window, window_schedule
from cvcourse.diffusion.forward import (
    diffusion_loss,
    diffusion_training_step,
    drop_labels,
    min_snr_weights,
    predict_eps,
    predict_x0,
    q_sample,
    to_diffusion_range,
    to_image_range,
)
from cvcourse.diffusion.guidance import eps_theta, guided_eps, null_label
from cvcourse.diffusion.inpainting import renoise, repaint
from cvcourse.diffusion.latent import LatentSpace
from cvcourse.diffusion.purification import noise_level_timestep, noise_levels, purify
from cvcourse.diffusion.reconstruction import (
    ddim_invert,
    ddim_reconstruct,
    partial_diffusion,
)
from cvcourse.diffusion.samplers import (
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
)
from cvcourse.diffusion.schedules import NoiseSchedule, cosine_betas, linear_betas

__all__ = [
    "AutoGuided",
    "LatentSpace",
    "NoiseSchedule",
    "cosine_betas",
    "ddim_invert",
    "ddim_reconstruct",
    "ddim_sample",
    "ddim_sigma",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_sample",
    "ddpm_step",
    "denoise_images",
    "diffusion_loss",
    "diffusion_training_step",
    "drop_labels",
    "eps_theta",
    "guided_eps",
    "linear_betas",
    "min_snr_weights",
    "noise_level_timestep",
    "noise_levels",
    "null_label",
    "partial_diffusion",
    "predict_eps",
    "predict_x0",
    "purify",
    "q_sample",
    "renoise",
    "repaint",
    "timestep_window",
    "to_diffusion_range",
    "to_image_range",
    "window_schedule",
]
