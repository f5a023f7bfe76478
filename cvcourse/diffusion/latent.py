"""Latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models").

A frozen autoencoder compresses images to a smaller latent map; the diffusion model is trained and sampled on
the latents, and only the decoder goes back to pixels. The forward process assumes data of roughly unit
variance (the schedule's final ``sqrt(alpha_bar_T) x_0`` must be negligible next to unit noise), but an
autoencoder's latents can have any scale, so they are multiplied by ``scale_factor = 1 / std(latents)``,
estimated once from a batch (the paper's ``1 / sigma_hat`` from the first batch, ``scale_by_std`` in its code;
Stable Diffusion's 0.18215 is such an estimate).

Typical use::

    space = LatentSpace(autoencoder).fit(images)         # images in the autoencoder's own range
    loss = diffusion_loss(model, schedule, space.encode(images))
    samples = space.decode(ddim_sample(model, schedule, space.latent_shape(16), clip_x0=False, spacing="leading"))

Latents are not confined to [-1, 1]: sample them with ``clip_x0=False``, and so on the leading grid (an unclipped
first step from the cosine schedule's top timestep divides the model's error by sqrt(alpha_bar_T); see
``ddim_timesteps``). An encoder that returns a posterior
``(mu, logvar)``, as :class:`cvcourse.models.VAE` and :class:`cvcourse.models.KLAutoencoder` do, is encoded
to its mean ``mu`` (Stable Diffusion draws a sample from it instead; with a small KL weight the two barely differ).
"""

from __future__ import annotations

from typing import Protocol

import torch


class Autoencoder(Protocol):
    def encode(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


class LatentSpace:
    """Unit-variance latents of a frozen ``autoencoder``: ``encode`` scales them, ``decode`` unscales them first.

    Both run without gradients (the autoencoder is not trained with the diffusion model). ``scale_factor`` is
    given, or estimated by :meth:`fit`.
    """

    def __init__(self, autoencoder: Autoencoder, scale_factor: float | None = None) -> None:
        if not (callable(getattr(autoencoder, "encode", None)) and callable(getattr(autoencoder, "decode", None))):
            raise TypeError(f"the autoencoder must have encode(images) -> latents and decode(latents) -> images "
                            f"methods, got {type(autoencoder).__name__}.")
        if scale_factor is not None and not scale_factor > 0:
            raise ValueError(f"scale_factor must be positive, got {scale_factor}; or leave it None and call fit().")
        self.autoencoder, self.scale_factor = autoencoder, scale_factor
        self._latent_shape: tuple[int, ...] | None = None

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> LatentSpace:
        """Set ``scale_factor = 1 / std`` of the latents of ``images`` (a representative batch); returns self."""
        latents = self._encode(images)
        if latents.numel() < 2:
            raise ValueError("fit needs a batch with more than one latent value to estimate their spread.")
        self.scale_factor = 1.0 / latents.float().std().item()
        return self

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> latents of unit variance, the data the diffusion model learns."""
        return self._encode(images) * self._scale()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (e.g. a sampler's output) -> images."""
        return self.autoencoder.decode(latents / self._scale())

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        """The shape of ``batch_size`` latents, as seen by the last ``fit`` or ``encode``: the samplers' ``shape``."""
        if self._latent_shape is None:
            raise ValueError("the latent shape is known after fit(images) or encode(images); call one of them first.")
        return (batch_size, *self._latent_shape)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        latents = self.autoencoder.encode(images)
        if isinstance(latents, tuple) and len(latents) == 2:
            latents = latents[0]  # a posterior (mu, logvar): its mean, the latent the decoder reconstructs best
        if not isinstance(latents, torch.Tensor):
            raise TypeError(f"autoencoder.encode must return a tensor of latents or a posterior (mu, logvar), got "
                            f"{type(latents).__name__}.")
        self._latent_shape = tuple(latents.shape[1:])
        return latents

    def _scale(self) -> float:
        if self.scale_factor is None:
            raise ValueError("scale_factor is not set: call fit(images) on a batch first, or pass scale_factor=...")
        return self.scale_factor
