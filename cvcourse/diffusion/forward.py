"""The forward (noising) process and the DDPM training loss (Ho et al. 2020).

Because ``q(x_t | x_0)`` is Gaussian (eq. 4), a noisy sample at any timestep takes one line::

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)

and read backwards, a prediction of the noise gives a prediction of the clean image (eq. 15)::

    x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)

The network learns to predict ``eps`` from ``(x_t, t)``. The variational bound reduces, with the right
reweighting, to a plain regression on the noise, ``L_simple = E_{t, x_0, eps} ||eps - eps_theta(x_t, t)||^2``
(eq. 14), with ``t`` uniform over the timesteps: the loss of Algorithm 1. Min-SNR-gamma weighting (Hang et al.
2023) is an optional reweighting of that regression over timesteps that converges faster.

Random numbers are drawn from an optional ``torch.Generator`` on the generator's own device and then moved,
so a CPU generator gives the same numbers whether the model runs on the CPU or a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from cvcourse.diffusion.guidance import EpsModel, null_label
from cvcourse.diffusion.schedules import NoiseSchedule

if TYPE_CHECKING:
    from cvcourse.train import Trainer


def gaussian(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """N(0, I) noise of ``shape`` drawn from ``generator``, on ``like``'s device and in its dtype."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(like.device, like.dtype)


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: int | torch.Tensor,
             noise: torch.Tensor | None = None) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` (eq. 4): ``x0`` noised to timestep(s) ``t``.

    ``t`` is an int for the whole batch or one timestep per sample; ``noise`` defaults to fresh N(0, I).
    """
    _check_batch(x0, "x0")
    if noise is None:
        noise = torch.randn_like(x0)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}.")
    return schedule.gather(schedule.sqrt_alpha_bar, t, x0) * x0 \
        + schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, x0) * noise


def predict_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``: eq. 4 solved for the clean image."""
    return (x_t - schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, x_t) * eps) \
        / schedule.gather(schedule.sqrt_alpha_bar, t, x_t)


def predict_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: int | torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """``eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)``: eq. 4 solved for the noise."""
    return (x_t - schedule.gather(schedule.sqrt_alpha_bar, t, x_t) * x0) \
        / schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, x_t)


def drop_labels(labels: torch.Tensor, null: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``labels`` with each image's label replaced by ``null`` with probability ``p`` (Ho & Salimans 2022,
    Algorithm 1). ``labels`` are (B,) classes or (B, H, W) class maps; a map is dropped whole."""
    if not 0 <= p <= 1:
        raise ValueError(f"drop_label_prob must lie in [0, 1], got {p}; the paper uses 0.1 or 0.2.")
    device = generator.device if generator is not None else labels.device
    dropped = torch.rand(len(labels), generator=generator, device=device).to(labels.device) < p
    return torch.where(dropped.view(-1, *[1] * (labels.ndim - 1)), torch.full_like(labels, null), labels)


def min_snr_weights(schedule: NoiseSchedule, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """``min(SNR_t, gamma) / SNR_t``: the Min-SNR-gamma loss weights of a noise predictor (Hang et al. 2023).

    Since ``eps_hat - eps = sqrt(SNR_t) (x_0 - x0_hat)``, ``L_simple`` weights the clean-image error at ``t`` by
    ``SNR_t``: the barely noised timesteps outweigh the noisy ones by orders of magnitude. These weights cap that at
    ``gamma`` (the paper uses 5 and reports 3.4x faster convergence).
    """
    if not gamma > 0:
        raise ValueError(f"min_snr_gamma must be positive, e.g. 5 as in the paper; got {gamma}.")
    snr = schedule.snr[schedule.check_timesteps(t, len(t)).to(schedule.snr.device)]
    return snr.clamp(max=gamma) / snr


def diffusion_loss(model: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, labels: torch.Tensor | None = None,
                   *, drop_label_prob: float = 0.0, min_snr_gamma: float | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``L_simple`` (eq. 14): the MSE between the noise and ``model(x_t, t, labels)`` at uniform random timesteps.

    ``labels`` are one class per image, or one class map per image for a mask-conditioned model.
    ``x0`` is a batch in the model's data range ([-1, 1] for images). With ``drop_label_prob > 0`` each label
    becomes the null label ``model.num_classes`` with that probability, so the same network also learns the
    unconditional prediction that classifier-free guidance needs. With ``min_snr_gamma`` each sample's squared
    error is weighted by :func:`min_snr_weights`.
    """
    _check_batch(x0, "x0")
    if labels is not None and tuple(labels.shape) not in ((len(x0),), (len(x0), *x0.shape[2:])):
        raise ValueError(f"expected one label per image, shape ({len(x0)},), or one class map per image, shape "
                         f"{(len(x0), *x0.shape[2:])}; got {tuple(labels.shape)}.")
    if drop_label_prob:
        if labels is None:
            raise ValueError("drop_label_prob > 0 needs labels to drop; pass labels=... or drop_label_prob=0.")
        labels = drop_labels(labels, null_label(model), drop_label_prob, generator)
    device = generator.device if generator is not None else x0.device
    t = torch.randint(0, schedule.T, (len(x0),), generator=generator, device=device).to(x0.device)
    eps = gaussian(x0.shape, generator, x0)
    squared_error = (model(q_sample(schedule, x0, t, eps), t, labels).float() - eps.float()).pow(2).flatten(1).mean(1)
    if min_snr_gamma is not None:
        squared_error = squared_error * min_snr_weights(schedule, t, min_snr_gamma).to(squared_error)
    return squared_error.mean()


def to_diffusion_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> [-1, 1], the range the diffusion models learn (zero mean, like the noise)."""
    return images * 2 - 1


def to_image_range(x: torch.Tensor) -> torch.Tensor:
    """A sampler's output in [-1, 1] -> images in [0, 1] for plotting and judging, clamped (it may overshoot)."""
    return ((x + 1) / 2).clamp(0, 1)


def diffusion_training_step(schedule: NoiseSchedule, *, conditional: bool = False, drop_label_prob: float = 0.0,
                   min_snr_gamma: float | None = None, pixels: bool = True) -> Callable:
    """The Trainer step of DDPM training (Algorithm 1) on ``(x, labels)`` batches.

    With ``pixels`` the batch holds images in [0, 1], mapped to [-1, 1] first; otherwise it holds data already in
    the model's range (the scaled latents of latent diffusion). :func:`diffusion_loss` is returned for the loop to
    optimise (weighted by ``min_snr_gamma`` if given); the labels condition the model (with ``drop_label_prob`` for
    classifier-free guidance) when ``conditional`` is set.
    """
    if drop_label_prob and not conditional:
        raise ValueError("drop_label_prob > 0 drops labels, which needs conditional=True.")

    def step(batch: tuple[torch.Tensor, torch.Tensor], ctx: Trainer) -> torch.Tensor:
        x, labels = batch
        with ctx.autocast():
            return diffusion_loss(ctx.model, schedule, to_diffusion_range(x) if pixels else x,
                                  labels if conditional else None, drop_label_prob=drop_label_prob,
                                  min_snr_gamma=min_snr_gamma)

    return step


def _check_batch(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float batch (B, C, H, W) in the model's data range, got {shape}"
                         f"{' of ' + str(x.dtype) if isinstance(x, torch.Tensor) else ''}; "
                         "map [0, 1] images to [-1, 1] with images * 2 - 1.")
