"""A KL-regularised convolutional autoencoder with a *spatial* latent: the first stage of latent diffusion.

Rombach et al. 2022 (section 3, "Perceptual Image Compression"): an encoder maps an image (H, W) to a latent
map (latent_channels, H / f, W / f) with a downsampling factor f, and the decoder maps it back. A small KL
penalty towards N(0, I) (their "KL-reg.", weighted ~1e-6 in Stable Diffusion) keeps the latents from drifting to
arbitrary scales without forcing them to be a good prior, as a VAE's must be: the prior of latent diffusion is
the diffusion model itself. Stable Diffusion uses f = 8 and 4 channels (512 x 512 x 3 -> 64 x 64 x 4); for
28 x 28 glyphs this one uses f = 4 (-> 7 x 7 x 4, 196 numbers instead of 784).

The interface is the VAE's (``forward -> (reconstruction, mu, logvar)``, ``encode -> (mu, logvar)``, ``decode``),
so it trains with the same step, :func:`cvcourse.generative.vae.vae_step`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cvcourse.models.vae import GaussianAutoencoder, check_unit_range

DOWNSAMPLING = 4  # two stride-2 convolutions


class KLAutoencoder(GaussianAutoencoder):
    """``KLAutoencoder(latent_channels=4)``: images (B, C, H, W) in [0, 1] <-> latents (B, latent_channels, H/4, W/4).

    ``mean_pixel`` (the data's mean, e.g. 0.1 for glyphs) starts the output bias at its logit, so the untrained
    decoder outputs the average brightness instead of 0.5.
    """

    def __init__(self, latent_channels: int = 4, *, channels: int = 1, width: int = 32,
                 mean_pixel: float | None = None) -> None:
        super().__init__()
        if latent_channels < 1 or channels < 1 or width < 1:
            raise ValueError(f"latent_channels, channels and width must be >= 1, got {latent_channels}, {channels}, "
                             f"{width}.")
        if mean_pixel is not None and not 0 < mean_pixel < 1:
            raise ValueError(f"mean_pixel must lie in (0, 1), got {mean_pixel}; pass images.mean().item().")
        self.latent_channels, self.channels = latent_channels, channels
        wide = 2 * width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, wide, 4, stride=2, padding=1), nn.SiLU(),  # H/2
            nn.Conv2d(wide, wide, 3, padding=1), nn.SiLU(),
            nn.Conv2d(wide, wide, 4, stride=2, padding=1), nn.SiLU(),  # H/4
            nn.Conv2d(wide, 2 * latent_channels, 3, padding=1),  # mu and logvar, stacked on the channels
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, wide, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(wide, wide, 4, stride=2, padding=1), nn.SiLU(),  # H/2
            nn.Conv2d(wide, wide, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(wide, width, 4, stride=2, padding=1), nn.SiLU(),  # H
            nn.Conv2d(width, channels, 3, padding=1), nn.Sigmoid(),
        )
        if mean_pixel is not None:  # start at the average image: from a grey start, a small net can get stuck at black
            nn.init.constant_(self.decoder[-2].bias, math.log(mean_pixel / (1 - mean_pixel)))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior ``q(z | x)``: ``mu`` and ``logvar``, each (B, latent_channels, H/4, W/4)."""
        if images.ndim != 4 or images.shape[1] != self.channels:
            raise ValueError(f"The autoencoder expects images of shape (B, {self.channels}, H, W), got "
                             f"{tuple(images.shape)}.")
        if images.shape[-1] % DOWNSAMPLING or images.shape[-2] % DOWNSAMPLING:
            raise ValueError(f"The image height and width must be multiples of {DOWNSAMPLING} (two halvings), got "
                             f"{tuple(images.shape[-2:])}; resize or pad them, e.g. 28 or 32.")
        check_unit_range(images, "The autoencoder")
        mu, logvar = self.encoder(images).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_channels, h, w) -> images (B, channels, 4h, 4w) in [0, 1]."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f"The decoder expects latents of shape (B, {self.latent_channels}, h, w), got "
                             f"{tuple(z.shape)}.")
        return self.decoder(z)
