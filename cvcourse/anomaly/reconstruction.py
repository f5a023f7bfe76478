"""Anomaly maps from reconstructions: |x - x_hat|, where x_hat is what a model of normal images makes of x.

An autoencoder reconstructs through a bottleneck; partial diffusion (AnoDDPM, Wyatt et al., CVPR Workshops 2022,
section 3) noises x to an intermediate timestep t_lambda with q(x_t | x_0) and denoises it back: the noise drowns
the anomaly's detail, and the model, trained on normal images only, fills in what it finds typical. t_lambda sets
the trade: too small and the anomaly survives the noise (it is reconstructed too), too large and the normal detail
is lost as well (everything differs). Averaging the maps of several noise draws lowers the map's own noise.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2.functional import gaussian_blur
from tqdm.auto import tqdm

from cvcourse.anomaly.noise import check_noise, jump_noise
from cvcourse.diffusion import partial_diffusion, to_diffusion_range, to_image_range
from cvcourse.diffusion.guidance import EpsModel
from cvcourse.diffusion.schedules import NoiseSchedule, check_timestep
from cvcourse.models.vae import check_unit_range


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    if images.ndim != 4:
        raise ValueError(f"{name} must be a batch (N, C, H, W), got shape {tuple(images.shape)}; "
                         "add a batch dimension with images[None].")
    check_unit_range(images, "An anomaly map")


def anomaly_map(images: torch.Tensor, reconstructions: torch.Tensor, blur_sigma: float = 1.0) -> torch.Tensor:
    """The absolute difference averaged over the channels and smoothed by a Gaussian of ``blur_sigma`` pixels
    (0: no smoothing): (N, H, W). Images and reconstructions in [0, 1], the same shape."""
    _check_images(images)
    if reconstructions.shape != images.shape:
        raise ValueError(f"reconstructions {tuple(reconstructions.shape)} and images {tuple(images.shape)} differ in "
                         "shape; reconstruct the same batch.")
    return smooth((images - reconstructions).abs().mean(1), blur_sigma)


def smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Maps (N, H, W) blurred by a Gaussian of ``sigma`` pixels (kernel 2 * ceil(2 sigma) + 1; 0: unchanged)."""
    if sigma < 0:
        raise ValueError(f"blur_sigma must be >= 0 (pixels), got {sigma}.")
    if sigma == 0:
        return maps
    kernel = 2 * math.ceil(2 * sigma) + 1
    return gaussian_blur(maps[:, None], [kernel, kernel], [sigma, sigma])[:, 0]


def image_scores(maps: torch.Tensor) -> torch.Tensor:
    """One score per image: its map's maximum (a defect is anomalous however small it is)."""
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {tuple(maps.shape)}.")
    return maps.flatten(1).amax(1)


@torch.no_grad()
def autoencoder_maps(autoencoder: torch.nn.Module, images: torch.Tensor, *, blur_sigma: float = 1.0,
                     batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Anomaly maps (N, H, W) and reconstructions of ``images`` in [0, 1] through an autoencoder's ``reconstruct``
    (a :class:`cvcourse.models.vae.GaussianAutoencoder` decodes the posterior mean: no sampling noise in the map)."""
    _check_images(images)
    autoencoder.eval()
    device = next(autoencoder.parameters()).device
    reconstructions = torch.cat([autoencoder.reconstruct(batch.to(device)).cpu()
                                 for batch in images.split(batch_size)])
    return anomaly_map(images, reconstructions, blur_sigma), reconstructions


def partial_diffusion_maps(model: EpsModel, schedule: NoiseSchedule, images: torch.Tensor, t_lambda: int, *,
                           steps: int = 100, draws: int = 1, labels: torch.Tensor | None = None,
                           blur_sigma: float = 1.0, noise: str = "gaussian", seed: int = 0, batch_size: int = 256,
                           progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """AnoDDPM-style anomaly maps (N, H, W), averaged over ``draws`` noise draws, and the first draw's
    reconstructions in [0, 1].

    Each draw noises ``images`` (in [0, 1]) to ``t_lambda`` and denoises them with deterministic DDIM on the grid of
    ``steps`` timesteps over [0, T), so about ``steps * t_lambda / T`` network evaluations per image (AnoDDPM runs
    every timestep with DDPM; DDIM keeps the sweep affordable). ``labels`` condition a class-conditional model (the
    category). ``noise`` is the jump's noise, ``"gaussian"`` or ``"pyramid"`` (:mod:`cvcourse.anomaly.noise`).
    Deterministic for a given ``seed``.
    """
    _check_images(images)
    check_timestep(t_lambda, schedule.T, "t_lambda")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}.")
    check_noise(noise)
    device = next(model.parameters()).device
    schedule = schedule.to(device)
    maps, first = torch.zeros(images.shape[0], *images.shape[-2:]), []
    batches = list(zip(images.split(batch_size), (labels.split(batch_size) if labels is not None
                                                  else [None] * math.ceil(len(images) / batch_size))))
    generator = torch.Generator().manual_seed(seed)
    with tqdm(total=draws * len(batches), desc=f"partial diffusion t={t_lambda}", disable=not progress) as bar:
        for draw in range(draws):
            done = 0
            for batch, batch_labels in batches:
                x0 = to_diffusion_range(batch).to(device)
                x_hat = to_image_range(partial_diffusion(
                    model, schedule, x0, t_lambda, steps=steps, eta=0.0,
                    noise=jump_noise(noise, tuple(x0.shape), generator).to(device),
                    labels=None if batch_labels is None else batch_labels.to(device))).cpu()
                maps[done:done + len(batch)] += anomaly_map(batch, x_hat, blur_sigma) / draws
                if draw == 0:
                    first.append(x_hat)
                done += len(batch)
                bar.update()
    return maps, torch.cat(first)
