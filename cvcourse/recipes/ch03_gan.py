"""Chapter 03, GANs: the settings, targets and cached training of the DCGAN, the conditional GAN and the small games
of the mode-collapse section.

``trained_gan(cfg)`` returns the generator trained with the recipe ``cfg.gan``: from the cache when a GAN with the
same recipe was trained before on this machine (by this chapter, chapter 04 or ``make bench``), else by training
it now, with checkpoints, so that an interrupted run resumes where it stopped. ``played_gan(cfg, game)`` does the
same for a small game whose two players may learn at different rates, with the judge's reading of its samples
every few steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cvcourse import config
from cvcourse.generative.training import train_gan
from cvcourse.history import Every
from cvcourse.models.gan import Discriminator, Generator
from cvcourse.recipes.glyphs import training_glyphs
from cvcourse.recipes.judge import glyph_judge
from cvcourse.recipes.training import cached_training, require_finished, training_info
from cvcourse.seeding import seed_everything

CHAPTER = "03_gan"


@dataclass(frozen=True)
class GanRecipe:
    """Everything a trained glyph GAN depends on: DCGAN's networks and Adam settings, the data and the budget.

    Its fields are the cache key; ``version`` changes when the architecture or the training code does.
    """

    version: int = 2
    image_size: int = 28
    train_size: int = 10_000
    latent_dim: int = 64
    width: int = 64
    batch_size: int = 64
    steps: int = 2000
    lr: float = 2e-4
    seed: int = 0


@dataclass(frozen=True)
class GameRecipe:
    """A small GAN game whose players may learn at different rates (section 6), read by the judge every
    ``watch_every`` steps on ``watch_samples`` samples of the same latents. Its fields are the cache key."""

    version: int = 1
    image_size: int = 28
    train_size: int = 10_000
    latent_dim: int = 64
    width: int = 16
    batch_size: int = 64
    steps: int = 1200
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    watch_every: int = 100
    watch_samples: int = 500
    seed: int = 0


@dataclass(frozen=True)
class Settings(config.Settings):
    gan: GanRecipe = GanRecipe()
    balanced_game: GameRecipe = GameRecipe()  # DCGAN's equal learning rates
    runaway_game: GameRecipe = GameRecipe(generator_lr=2e-3, discriminator_lr=2e-5)  # G learns 100x faster than D
    sample_count: int = 2000
    checkpoint_every: int = 500
    watch_width: int = 16  # the small model the chapter trains live with its step written out
    watch_steps: int = 600
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "dcgan_confident_share": ">= 0.35", "dcgan_class_coverage": ">= 0.90", "cgan_label_accuracy": ">= 0.90",
        "cgan_class_spread": ">= 0.5", "train_s": "<= 600"})


OVERRIDES: dict[str, dict[str, Any]] = {
    # 600 steps are too few for the conditional GAN to use its labels: no label-accuracy target in smoke
    "smoke": dict(gan=dict(train_size=2000, latent_dim=32, width=32, steps=600), sample_count=500, watch_steps=20,
                  checkpoint_every=100, balanced_game=dict(train_size=2000, steps=200, watch_every=50),
                  runaway_game=dict(train_size=2000, steps=200, watch_every=50),
                  targets={"dcgan_confident_share": ">= 0.15", "dcgan_class_coverage": ">= 0.70"}),
    # not yet run on a GPU: the cpu profile's targets until it has been
    "gpu": dict(gan=dict(batch_size=128, steps=10_000), sample_count=5000, checkpoint_every=1000,
                balanced_game=dict(steps=2000), runaway_game=dict(steps=2000),
                targets={"dcgan_confident_share": ">= 0.35", "dcgan_class_coverage": ">= 0.90",
                         "cgan_label_accuracy": ">= 0.90", "cgan_class_spread": ">= 0.5"}),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 03's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)


def trained_gan(cfg: config.Config, *, conditional: bool = False, loss: str = "non_saturating",
                rebuild: bool = False, progress: bool = False) -> tuple[Generator, dict[str, Any]]:
    """The DCGAN (or conditional GAN) generator trained with ``cfg.gan``, cached; and its training info.

    ``cfg`` is any chapter's settings with a ``gan`` recipe, a ``device`` and a ``checkpoint_every``.
    """
    recipe = cfg.gan
    num_classes = 10 if conditional else None

    def build() -> Generator:
        seed_everything(recipe.seed)
        return Generator(recipe.latent_dim, image_size=recipe.image_size, width=recipe.width, num_classes=num_classes)

    def train(generator: Generator, checkpoint_dir: Path) -> dict[str, Any]:
        images, labels = training_glyphs(recipe.train_size, recipe.image_size)
        discriminator = Discriminator(image_size=recipe.image_size, width=recipe.width, num_classes=num_classes)
        trainer = train_gan(generator, discriminator, images, labels, steps=recipe.steps,
                            batch_size=recipe.batch_size, lr=recipe.lr, loss=loss, conditional=conditional,
                            seed=recipe.seed, device=cfg.device, checkpoint_dir=checkpoint_dir,
                            checkpoint_every=cfg.checkpoint_every, resume=True, progress=progress)
        require_finished(trainer, recipe.steps)
        return training_info(trainer)

    name = f"glyph-{'cgan' if conditional else 'dcgan'}-{loss}"
    return cached_training(name, recipe, build, train, rebuild=rebuild, conditional=conditional, loss=loss)


def played_gan(cfg: config.Config, game: GameRecipe, *, rebuild: bool = False,
               progress: bool = False) -> tuple[Generator, dict[str, Any]]:
    """The small generator trained in the game ``game`` (alternating updates, its two learning rates), cached; and its
    training info. Its history holds what the judge read every ``game.watch_every`` steps: ``class_coverage``,
    ``confident_share`` and ``digit_0`` ... ``digit_9``, the share of each digit among the samples, which
    ``info["digit_shares"]`` also gives as one row per reading."""

    def build() -> Generator:
        seed_everything(game.seed)
        return Generator(game.latent_dim, image_size=game.image_size, width=game.width)

    def train(generator: Generator, checkpoint_dir: Path) -> dict[str, Any]:
        images, labels = training_glyphs(game.train_size, game.image_size)
        judge = glyph_judge(game.image_size, device=cfg.device)

        def watch(trainer) -> None:
            samples = generator.sample(game.watch_samples, generator=torch.Generator().manual_seed(game.seed))
            digits = judge.class_shares(samples)
            trainer.history.log(trainer.step, class_coverage=judge.class_coverage(samples),
                                confident_share=judge.confident_share(samples),
                                **{f"digit_{digit}": share for digit, share in enumerate(digits.tolist())})

        discriminator = Discriminator(image_size=game.image_size, width=game.width)
        trainer = train_gan(generator, discriminator, images, labels, steps=game.steps, batch_size=game.batch_size,
                            lr=game.generator_lr, discriminator_lr=game.discriminator_lr, seed=game.seed,
                            device=cfg.device, checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.checkpoint_every,
                            resume=True, progress=progress, live_plot=False, callbacks=[Every(game.watch_every, watch)])
        require_finished(trainer, game.steps)
        return training_info(trainer)

    generator, info = cached_training("glyph-gan-game", game, build, train, rebuild=rebuild)
    shares = [info["history"].series(f"digit_{digit}")[1] for digit in range(10)]
    return generator, {**info, "digit_shares": torch.tensor(shares).T}
