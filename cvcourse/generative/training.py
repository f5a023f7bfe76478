"""Training a GAN and a VAE with the course's loop: the optimisers and step functions the papers prescribe.

Both take images in [0, 1] held in memory and return the :class:`cvcourse.train.Trainer`, whose history holds the
curves; with a ``checkpoint_dir`` an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cvcourse.data import shuffled_batches
from cvcourse.generative.gan import gan_step
from cvcourse.generative.vae import vae_step
from cvcourse.models.gan import Discriminator, Generator
from cvcourse.models.vae import VAE
from cvcourse.train import Trainer

ADAM_BETAS = (0.5, 0.999)  # DCGAN section 4: beta1 = 0.9 made training oscillate


def train_gan(generator: Generator, discriminator: Discriminator, images: torch.Tensor, labels: torch.Tensor, *,
              steps: int, batch_size: int, lr: float, discriminator_lr: float | None = None,
              loss: str = "non_saturating", conditional: bool = False, seed: int = 0,
              device: str | torch.device | None = None, checkpoint_dir: str | Path | None = None,
              checkpoint_every: int = 0, resume: bool = False, progress: bool = True, live_plot: bool | None = None,
              callbacks=()) -> Trainer:
    """Train a (conditional) GAN with Adam (DCGAN's ``lr`` and betas); returns the Trainer (and its history).

    Both players learn at ``lr`` unless ``discriminator_lr`` gives the discriminator its own rate (two time-scale
    updates, Heusel et al. 2017). ``resume=True`` continues from the latest checkpoint in ``checkpoint_dir``."""
    rates = {"G": lr, "D": lr if discriminator_lr is None else discriminator_lr}
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=rates[name], betas=ADAM_BETAS)
                  for name, model in (("G", generator), ("D", discriminator))}
    trainer = Trainer({"G": generator, "D": discriminator}, optimizers, gan_step(loss, conditional=conditional),
                      device=device, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=checkpoint_every, progress=progress, live_plot=live_plot,
                      callbacks=callbacks)
    trainer.fit(shuffled_batches(images, labels, batch_size=batch_size, seed=seed), steps=steps, resume=resume)
    return trainer


def train_vae(model: VAE, images: torch.Tensor, *, steps: int, batch_size: int, lr: float, reduction: str = "sum",
              beta: float = 1.0, seed: int = 0, device: str | torch.device | None = None,
              checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0, resume: bool = False,
              progress: bool = True) -> Trainer:
    """Train a VAE with Adam on the negative ELBO (``reduction`` and ``beta`` as in :func:`vae_loss`); ``resume=True``
    continues from the latest checkpoint in ``checkpoint_dir``."""
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=lr), vae_step(reduction=reduction, beta=beta),
                      device=device, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                      progress=progress)
    trainer.fit(shuffled_batches(images, batch_size=batch_size, seed=seed), steps=steps, resume=resume)
    return trainer
