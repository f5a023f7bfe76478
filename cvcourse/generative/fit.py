"""Training the generative chapters' models on glyphs, cached by configuration so later chapters reuse them.

``glyph_gan(cfg)`` and ``glyph_vae(cfg)`` return a trained model: from the cache when a model with exactly the
same settings was trained before on this machine (by the chapter, another chapter or ``make bench``), else by
training it now, with checkpoints, so an interrupted run resumes where it stopped. The returned ``info`` holds
the training history (for the loss curves), the training time and the number of steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvcourse.cache import cached_model
from cvcourse.config import Config
from cvcourse.data import glyph_tensors, shuffled_batches
from cvcourse.device import seed_everything
from cvcourse.generative.gan import gan_step
from cvcourse.generative.latent_prior import GaussianMixturePrior
from cvcourse.generative.vae import vae_step
from cvcourse.models.gan import Discriminator, Generator
from cvcourse.models.vae import VAE
from cvcourse.history import History
from cvcourse.train import Trainer, require_finished

ADAM_BETAS = (0.5, 0.999)  # DCGAN section 4: beta1 = 0.9 made training oscillate
GAN_VERSION, VAE_VERSION = 1, 1  # bump when the architecture or the training recipe changes


def training_glyphs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """The chapter's training glyphs (seed 0): images (N, 1, S, S) in [0, 1] and labels (N,)."""
    return glyph_tensors(cfg.train_size, cfg.image_size, seed=0)


def held_out_glyphs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """``cfg.sample_count`` held-out glyphs (seed 1): the real reference every measured sample set is compared with."""
    return glyph_tensors(cfg.sample_count, cfg.image_size, seed=1)


def train_gan(generator: Generator, discriminator: Discriminator, images: torch.Tensor, labels: torch.Tensor, *,
              steps: int, batch_size: int, lr: float, loss: str = "non_saturating", conditional: bool = False,
              seed: int = 0, device: str | torch.device | None = None,
              checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0, progress: bool = True,
              callbacks=()) -> Trainer:
    """Train a (conditional) GAN with Adam (DCGAN's ``lr`` and betas); returns the Trainer (and its history)."""
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=lr, betas=ADAM_BETAS)
                  for name, model in (("G", generator), ("D", discriminator))}
    trainer = Trainer({"G": generator, "D": discriminator}, optimizers, gan_step(loss, conditional=conditional),
                      device=device, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=checkpoint_every, progress=progress, callbacks=callbacks)
    trainer.fit(shuffled_batches(images, labels, batch_size=batch_size, seed=seed), steps=steps,
                resume=checkpoint_dir is not None)
    return trainer


def train_vae(model: VAE, images: torch.Tensor, *, steps: int, batch_size: int, lr: float, reduction: str = "sum",
              beta: float = 1.0, seed: int = 0, device: str | torch.device | None = None,
              checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0, progress: bool = True) -> Trainer:
    """Train a VAE with Adam on the negative ELBO (``reduction`` and ``beta`` as in :func:`vae_loss`)."""
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=lr), vae_step(reduction=reduction, beta=beta),
                      device=device, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                      progress=progress)
    trainer.fit(shuffled_batches(images, batch_size=batch_size, seed=seed), steps=steps,
                resume=checkpoint_dir is not None)
    return trainer


def training_info(trainer: Trainer) -> dict[str, Any]:
    """What the cache keeps beside the weights: the history (as plain lists), the seconds and the steps.

    The seconds are ``trainer.seconds``: those of a run resumed from a checkpoint include the time before it.
    """
    return {"history": trainer.history.state_dict(), "seconds": trainer.seconds, "steps": trainer.step}


def _with_history(trained: tuple[nn.Module, dict[str, Any]]) -> tuple[nn.Module, dict[str, Any]]:
    """The cached model and its info, the history turned back into a :class:`History` for plotting."""
    model, info = trained
    history = History()
    history.load_state_dict(info["history"])
    return model, {**info, "history": history}


def gan_settings(cfg: Config, *, conditional: bool, loss: str = "non_saturating") -> dict[str, Any]:
    """Everything a trained GAN depends on: the cache key of :func:`glyph_gan`."""
    return dict(version=GAN_VERSION, conditional=conditional, loss=loss, image_size=cfg.image_size,
                train_size=cfg.train_size, latent_dim=cfg.latent_dim, width=cfg.gan_width,
                batch_size=cfg.gan_batch_size, steps=cfg.gan_steps, lr=cfg.gan_lr, seed=cfg.seed)


def glyph_gan(cfg: Config, *, conditional: bool = False, loss: str = "non_saturating", rebuild: bool = False,
              progress: bool = False) -> tuple[Generator, dict[str, Any]]:
    """A DCGAN (or conditional GAN) generator trained on glyphs with ``cfg``'s settings, cached; and its info."""
    settings = gan_settings(cfg, conditional=conditional, loss=loss)
    num_classes = 10 if conditional else None

    def build() -> Generator:
        seed_everything(cfg.seed)
        return Generator(cfg.latent_dim, image_size=cfg.image_size, width=cfg.gan_width, num_classes=num_classes)

    def train(generator: nn.Module, checkpoint_dir: Path) -> dict[str, Any]:
        images, labels = training_glyphs(cfg)
        discriminator = Discriminator(image_size=cfg.image_size, width=cfg.gan_width, num_classes=num_classes)
        trainer = train_gan(generator, discriminator, images, labels, steps=cfg.gan_steps,
                            batch_size=cfg.gan_batch_size, lr=cfg.gan_lr, loss=loss, conditional=conditional,
                            seed=cfg.seed, device=cfg.device, checkpoint_dir=checkpoint_dir,
                            checkpoint_every=cfg.checkpoint_every, progress=progress)
        require_finished(trainer, cfg.gan_steps)
        return training_info(trainer)

    name = f"glyph-{'cgan' if conditional else 'dcgan'}-{loss}"
    return _with_history(cached_model(name, settings, build, train, rebuild=rebuild))


def vae_settings(cfg: Config, *, reduction: str = "sum") -> dict[str, Any]:
    """Everything a trained VAE depends on: the cache key of :func:`glyph_vae`."""
    return dict(version=VAE_VERSION, reduction=reduction, beta=cfg.beta, image_size=cfg.image_size,
                train_size=cfg.train_size, latent_dim=cfg.vae_latent_dim, width=cfg.vae_width,
                batch_size=cfg.vae_batch_size, steps=cfg.vae_steps, lr=cfg.vae_lr, seed=cfg.seed)


def glyph_vae(cfg: Config, *, reduction: str = "sum", rebuild: bool = False,
              progress: bool = False) -> tuple[VAE, dict[str, Any]]:
    """A VAE trained on glyphs with ``cfg``'s settings and reconstruction ``reduction``, cached; and its info."""
    settings = vae_settings(cfg, reduction=reduction)

    def build() -> VAE:
        seed_everything(cfg.seed)
        return VAE(cfg.vae_latent_dim, image_size=cfg.image_size, width=cfg.vae_width)

    def train(model: nn.Module, checkpoint_dir: Path) -> dict[str, Any]:
        images, _ = training_glyphs(cfg)
        trainer = train_vae(model, images, steps=cfg.vae_steps, batch_size=cfg.vae_batch_size, lr=cfg.vae_lr,
                            reduction=reduction, beta=cfg.beta, seed=cfg.seed, device=cfg.device,
                            checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.checkpoint_every, progress=progress)
        require_finished(trainer, cfg.vae_steps)
        return training_info(trainer)

    return _with_history(cached_model(f"glyph-vae-{reduction}", settings, build, train, rebuild=rebuild))


def glyph_vae_codes(cfg: Config, vae: VAE) -> torch.Tensor:
    """The VAE's codes (posterior means) of the training glyphs: (N, latent_dim), on the CPU."""
    images, _ = training_glyphs(cfg)
    device = next(vae.parameters()).device
    with torch.no_grad():
        return torch.cat([vae.encode(chunk.to(device))[0].cpu() for chunk in images.split(1000)])


def glyph_vae_prior(cfg: Config, codes: torch.Tensor) -> GaussianMixturePrior:
    """A Gaussian mixture of ``cfg.vae_prior_components`` fitted to ``codes`` (from :func:`glyph_vae_codes`).

    Sampling the VAE from it instead of N(0, I) avoids the prior's holes (see :mod:`cvcourse.generative.latent_prior`).
    """
    return GaussianMixturePrior.fit(codes, cfg.vae_prior_components, seed=cfg.seed)
