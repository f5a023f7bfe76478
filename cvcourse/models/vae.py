"""A small convolutional variational autoencoder (Kingma & Welling 2014) for 28x28 or 32x32 images.

The encoder maps an image in [0, 1] to the mean and log-variance of a diagonal Gaussian over ``latent_dim``
latent variables; the decoder maps a latent back to an image in [0, 1] (a sigmoid output). The resampling
follows the DCGAN plan (strided and transposed 4x4 convolutions), so the chapters compare like with like.
The objective lives in :mod:`cvcourse.generative.vae`.
"""

from __future__ import annotations

import torch
from torch import nn

from cvcourse.models.blocks import upsampling_plan


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """``z = mu + sigma * eps`` with ``sigma = exp(logvar / 2)`` and ``eps ~ N(0, I)`` (section 2.4).

    The randomness sits in ``eps``, outside the network, so gradients flow to ``mu`` and ``logvar``.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}.")
    if noise is None:
        noise = torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * noise


def check_unit_range(images: torch.Tensor, model: str) -> None:
    """Raise a ValueError that names the conversion unless ``images`` lie in [0, 1] (a sigmoid decoder's range)."""
    if images.min() < -1e-3 or images.max() > 1 + 1e-3:
        raise ValueError(f"{model} expects images in [0, 1], got values in [{images.min().item():.3g}, "
                         f"{images.max().item():.3g}]; map [-1, 1] images with (images + 1) / 2.")


class GaussianAutoencoder(nn.Module):
    """An encoder to a diagonal Gaussian ``q(z | x)`` and a decoder: subclasses define ``encode`` and ``decode``.

    ``forward`` decodes a sample drawn with the reparameterisation trick, as training needs; ``reconstruct``
    decodes the posterior mean.
    """

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(images)
        return self.decode(reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` decoded from their posterior means ``mu(x)``: the deterministic reconstruction."""
        return self.decode(self.encode(images)[0])


class VAE(GaussianAutoencoder):
    """``VAE(latent_dim)``: ``forward(images) -> (reconstruction, mu, logvar)``; ``encode``, ``decode``, ``sample``."""

    def __init__(self, latent_dim: int = 16, *, image_size: int = 28, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        start, doublings = upsampling_plan(image_size)
        self.latent_dim, self.image_size, self.channels = latent_dim, image_size, channels
        top = width * 2 ** (doublings - 1)
        down: list[nn.Module] = []
        for level in range(doublings):
            down += [nn.Conv2d(channels if level == 0 else width * 2 ** (level - 1), width * 2**level, 4, stride=2,
                               padding=1), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(top * start * start, 2 * latent_dim))
        up: list[nn.Module] = [nn.Linear(latent_dim, top * start * start), nn.ReLU(inplace=True),
                               nn.Unflatten(1, (top, start, start))]
        for level in reversed(range(doublings)):
            out = channels if level == 0 else width * 2 ** (level - 1)
            up += [nn.ConvTranspose2d(width * 2**level, out, 4, stride=2, padding=1)]
            up += [nn.Sigmoid()] if level == 0 else [nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(*up)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior ``q(z | x)``: ``mu`` and ``logvar``, each (B, latent_dim)."""
        expected = (self.channels, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"The VAE expects images of shape (B, {', '.join(map(str, expected))}), got "
                             f"{tuple(images.shape)}.")
        check_unit_range(images, "The VAE")
        mu, logvar = self.encoder(images).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_dim) -> images (B, channels, image_size, image_size) in [0, 1]."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"The decoder expects latents of shape (B, {self.latent_dim}), got {tuple(z.shape)}.")
        return self.decoder(z)

    @torch.no_grad()
    def sample(self, count: int, *, generator: torch.Generator | None = None, prior=None) -> torch.Tensor:
        """``count`` images decoded from the prior N(0, I), on the CPU.

        ``prior``: anything with ``sample(count, generator=)`` returning (count, latent_dim) codes to decode instead,
        e.g. a :class:`~cvcourse.generative.latent_prior.GaussianMixturePrior` fitted to the training codes.
        """
        if prior is None:
            z = torch.randn(count, self.latent_dim, generator=generator)
        else:
            z = prior.sample(count, generator=generator)
        return self.decode(z.to(next(self.parameters()).device)).cpu()
