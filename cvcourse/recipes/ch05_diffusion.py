"""Chapter 05, diffusion: the settings, targets and cached training of the pixel-space DDPM, and cached samples.

``trained_ddpm(cfg, cfg.ddpm)`` returns the DDPM noise predictor (its EMA weights) trained with that recipe: from the
cache when one with the same recipe was trained before on this machine (by chapter 05, 06 or 07, or
``make bench``), else by training it now, with checkpoints. Its ``info`` holds the history (the loss, and the FCD
of the snapshots taken during training), the snapshots' galleries, the seconds and the steps. ``cached_samples``
keeps a sampler's output for a given model, since 1000-step DDPM sampling takes minutes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cvcourse import config
from cvcourse.cache import cached, tensor_digest
from cvcourse.diffusion.forward import to_image_range
from cvcourse.diffusion.samplers import ddim_sample, ddpm_sample
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.diffusion.training import Snapshots, keep_ema, train_diffusion
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.recipes.glyphs import training_glyphs
from cvcourse.recipes.judge import glyph_judge
from cvcourse.recipes.training import cached_training, require_finished, training_info
from cvcourse.seeding import seed_everything

CHAPTER = "05_diffusion"


@dataclass(frozen=True)
class DdpmRecipe:
    """Everything a trained glyph diffusion model depends on: its U-Net, its noise schedule and its training.

    The learning rate warms up and decays along a cosine (:func:`cvcourse.diffusion.training.warmup_cosine`); the
    loss is L_simple with Min-SNR-``min_snr_gamma`` weights; the model kept is the EMA of the weights. Its fields
    are the cache key; ``version`` changes when the architecture or the training code does.
    """

    version: int = 2
    image_size: int = 28
    train_size: int = 10_000
    schedule: str = "cosine"
    timesteps: int = 1000
    width: int = 24
    depth: int = 2
    block: str = "residual"
    attention: bool = True
    patch_size: int = 2
    batch_size: int = 64
    steps: int = 6000
    lr: float = 4e-3
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.995
    snapshot_every: int = 500
    seed: int = 0


@dataclass(frozen=True)
class Settings(config.Settings):
    ddpm: DdpmRecipe = DdpmRecipe()
    sample_count: int = 300
    checkpoint_every: int = 500
    snapshot_count: int = 200
    ddim_steps: int = 50
    ddim_eta: float = 1.0
    ddim_table_steps: tuple[int, ...] = (10, 20, 50)
    speed_count: int = 100  # the batch both samplers are timed on
    inversion_count: int = 100
    watch_width: int = 8  # the small U-Net that the chapter trains live with the student's L_simple
    watch_steps: int = 1000
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "ddpm_confident_share": ">= 0.80", "ddpm_class_coverage": ">= 0.90", "ddim_fcd_ratio": "<= 1.25",
        "ddim_speedup": ">= 10",
        "train_s": "<= 900"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(ddpm=dict(train_size=2000, width=16, steps=300, lr=1e-3, ema_decay=0.99, snapshot_every=100),
                  sample_count=32, checkpoint_every=100, snapshot_count=64, ddim_table_steps=(10, 50), speed_count=8,
                  inversion_count=16, watch_steps=30, targets={"ddim_speedup": ">= 10"}),
    # not yet run on a GPU; its targets are those of the cpu profile's earlier recipe until it has been
    "gpu": dict(ddpm=dict(width=64, batch_size=128, steps=20_000, lr=2e-4, ema_decay=0.9995, snapshot_every=2000),
                sample_count=2000, checkpoint_every=2000, snapshot_count=500, ddim_table_steps=(10, 20, 50, 100, 200),
                speed_count=500, inversion_count=500,
                targets={"ddpm_confident_share": ">= 0.40", "ddpm_class_coverage": ">= 0.90",
                         "ddim_fcd_ratio": "<= 1.25", "ddim_speedup": ">= 10"}),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 05's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)


def noise_schedule(recipe: DdpmRecipe) -> NoiseSchedule:
    """The noise schedule ``recipe`` trains and samples with."""
    return NoiseSchedule.named(recipe.schedule, recipe.timesteps)


def ddpm_unet(recipe: DdpmRecipe, num_classes: int | None = None, in_channels: int = 1) -> DiffusionUNet:
    """The noise predictor of ``recipe`` (untrained): the U-Net the chapters train on glyphs, or on latents."""
    return DiffusionUNet(in_channels, base_width=recipe.width, depth=recipe.depth, num_classes=num_classes,
                         block=recipe.block, attention=recipe.attention, patch_size=recipe.patch_size,
                         timesteps=recipe.timesteps)


def trained_ddpm(cfg: config.Config, recipe: DdpmRecipe, *, conditional: bool = False, drop_label_prob: float = 0.0,
                 rebuild: bool = False, progress: bool = False) -> tuple[DiffusionUNet, dict[str, Any]]:
    """A pixel-space DDPM noise predictor (EMA weights) trained on glyphs with ``recipe``, cached; and its info.

    ``conditional=True`` trains a class-conditional model with the label dropped at ``drop_label_prob``, for
    classifier-free guidance. ``cfg`` gives the device, ``checkpoint_every`` and ``snapshot_count``.
    """
    schedule = noise_schedule(recipe)

    def build() -> DiffusionUNet:
        seed_everything(recipe.seed)
        return ddpm_unet(recipe, 10 if conditional else None)

    def train(model: DiffusionUNet, checkpoint_dir: Path) -> dict[str, Any]:
        images, labels = training_glyphs(recipe.train_size, recipe.image_size)
        snapshot_labels = torch.arange(cfg.snapshot_count) % 10 if conditional else None
        snapshots = Snapshots(recipe.snapshot_every, schedule,
                              (cfg.snapshot_count, 1, recipe.image_size, recipe.image_size),
                              fcd=glyph_judge(recipe.image_size).fcd, labels=snapshot_labels)
        trainer = train_diffusion(model, schedule, images, labels, steps=recipe.steps, batch_size=recipe.batch_size,
                                  lr=recipe.lr, ema_decay=recipe.ema_decay, conditional=conditional,
                                  drop_label_prob=drop_label_prob, min_snr_gamma=recipe.min_snr_gamma,
                                  seed=recipe.seed, device=cfg.device, checkpoint_dir=checkpoint_dir,
                                  checkpoint_every=cfg.checkpoint_every, resume=True, progress=progress,
                                  callbacks=[snapshots.callback()])
        require_finished(trainer, recipe.steps)
        keep_ema(model, trainer)
        return {**training_info(trainer), **snapshots.state()}

    name = "glyph-cfg-ddpm" if conditional else "glyph-ddpm"
    return cached_training(name, recipe, build, train, rebuild=rebuild, conditional=conditional,
                           drop_label_prob=drop_label_prob)


def cached_samples(model: DiffusionUNet, schedule: NoiseSchedule, shape: tuple[int, ...], *, sampler: str = "ddpm",
                   steps: int | None = None, eta: float = 0.0, spacing: str = "trailing",
                   labels: torch.Tensor | None = None, guidance_scale: float = 0.0, seed: int = 0,
                   rebuild: bool = False, progress: bool = False) -> tuple[torch.Tensor, float]:
    """Samples of ``shape`` (B, C, H, W) in [0, 1] from a pixel-space model and the sampler's seconds, cached.

    ``sampler`` is ``"ddpm"`` (every timestep) or ``"ddim"`` (``steps``, ``eta``, ``spacing``). The cache key holds
    a digest of the model's weights and every sampler setting, so a retrained model or another setting samples
    afresh; the seconds are those measured when the samples were drawn.
    """
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"unknown sampler {sampler!r}; choose 'ddpm' or 'ddim'.")
    device = next(model.parameters()).device
    key = dict(model=tensor_digest(*model.state_dict().values()), schedule=tensor_digest(schedule.betas),
               shape=list(shape), sampler=sampler, steps=steps if sampler == "ddim" else schedule.T,
               eta=eta if sampler == "ddim" else 1.0, labels=None if labels is None else tensor_digest(labels),
               guidance_scale=guidance_scale, seed=seed, device=device.type)
    if sampler == "ddim":
        key["spacing"] = spacing

    def make() -> dict[str, Any]:
        options = dict(labels=None if labels is None else labels.to(device), guidance_scale=guidance_scale,
                       generator=torch.Generator().manual_seed(seed), progress=progress)
        model.eval()
        started = time.perf_counter()
        if sampler == "ddpm":
            x = ddpm_sample(model, schedule.to(device), shape, **options)
        else:
            x = ddim_sample(model, schedule.to(device), shape, steps=steps or 50, eta=eta, spacing=spacing, **options)
        return {"images": to_image_range(x).cpu(), "seconds": time.perf_counter() - started}

    entry = cached("glyph-samples", key, make, rebuild=rebuild)
    return entry["images"], entry["seconds"]
