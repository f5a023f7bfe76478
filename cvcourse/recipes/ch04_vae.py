"""Chapter 04, VAEs: the settings, targets and cached training of the VAE, and the mixture prior fitted to its codes.

The chapter compares its VAE with chapter 03's DCGAN, so it carries chapter 03's GAN recipe (``cfg.gan``) and loads
that model from the cache with :func:`cvcourse.recipes.ch03_gan.trained_gan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cvcourse import config
from cvcourse.generative.latent_prior import GaussianMixturePrior
from cvcourse.generative.training import train_vae
from cvcourse.models.vae import VAE
from cvcourse.recipes import ch03_gan
from cvcourse.recipes.glyphs import training_glyphs
from cvcourse.recipes.training import cached_training, require_finished, training_info
from cvcourse.seeding import seed_everything

CHAPTER = "04_vae"


@dataclass(frozen=True)
class VaeRecipe:
    """Everything a trained glyph VAE depends on; its fields are the cache key.

    ``beta`` weighs the KL term of the negative ELBO (1 is the ELBO itself).
    """

    version: int = 1
    image_size: int = 28
    train_size: int = 10_000
    latent_dim: int = 8
    width: int = 32
    batch_size: int = 128
    steps: int = 5000
    lr: float = 1e-3
    beta: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class Settings(config.Settings):
    vae: VaeRecipe = VaeRecipe()
    gan: ch03_gan.GanRecipe = ch03_gan.GanRecipe()  # chapter 03's DCGAN, for the comparison
    prior_components: int = 10  # the Gaussian mixture fitted to the training codes
    sample_count: int = 2000
    checkpoint_every: int = 500
    watch_width: int = 16  # the small model the chapter trains live with its step written out
    watch_steps: int = 600
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "psnr": ">= 20", "prior_confident_share": ">= 0.40", "mixture_confident_share": ">= 0.70", "train_s": "<= 300"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(vae=dict(train_size=2000, width=16, batch_size=64, steps=600, lr=2e-3), watch_steps=20,
                  gan=ch03_gan.OVERRIDES["smoke"]["gan"], sample_count=500, checkpoint_every=100,
                  targets={"psnr": ">= 17", "prior_confident_share": ">= 0.08", "mixture_confident_share": ">= 0.12"}),
    "gpu": dict(vae=dict(steps=20_000), gan=ch03_gan.OVERRIDES["gpu"]["gan"], sample_count=5000,
                checkpoint_every=1000,
                targets={"psnr": ">= 20", "prior_confident_share": ">= 0.40", "mixture_confident_share": ">= 0.70"}),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 04's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)


def trained_vae(cfg: config.Config, *, reduction: str = "sum", rebuild: bool = False,
                progress: bool = False) -> tuple[VAE, dict[str, Any]]:
    """The VAE trained with ``cfg.vae`` and the reconstruction term's ``reduction``, cached; and its info."""
    recipe = cfg.vae

    def build() -> VAE:
        seed_everything(recipe.seed)
        return VAE(recipe.latent_dim, image_size=recipe.image_size, width=recipe.width)

    def train(model: VAE, checkpoint_dir: Path) -> dict[str, Any]:
        images, _ = training_glyphs(recipe.train_size, recipe.image_size)
        trainer = train_vae(model, images, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                            reduction=reduction, beta=recipe.beta, seed=recipe.seed, device=cfg.device,
                            checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.checkpoint_every, resume=True,
                            progress=progress)
        require_finished(trainer, recipe.steps)
        return training_info(trainer)

    return cached_training(f"glyph-vae-{reduction}", recipe, build, train, rebuild=rebuild, reduction=reduction)


def training_codes(cfg: config.Config, vae: VAE) -> torch.Tensor:
    """The VAE's codes (posterior means) of the training glyphs: (N, latent_dim), on the CPU."""
    images, _ = training_glyphs(cfg.vae.train_size, cfg.vae.image_size)
    device = next(vae.parameters()).device
    with torch.no_grad():
        return torch.cat([vae.encode(chunk.to(device))[0].cpu() for chunk in images.split(1000)])


def mixture_prior(cfg: config.Config, codes: torch.Tensor) -> GaussianMixturePrior:
    """A Gaussian mixture of ``cfg.prior_components`` fitted to ``codes`` (from :func:`training_codes`).

    Sampling the VAE from it instead of N(0, I) avoids the prior's holes (see :mod:`cvcourse.generative.latent_prior`).
    """
    return GaussianMixturePrior.fit(codes, cfg.prior_components, seed=cfg.vae.seed)
