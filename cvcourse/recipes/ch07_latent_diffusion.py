"""Chapter 07, latent diffusion: a KL autoencoder (``cfg.autoencoder``), then the same kind of U-Net as chapter
05's trained on its scaled latents (``cfg.latent``), compared with chapter 05's pixel-space model (``cfg.ddpm``,
loaded from the cache). ``cached_samples`` keeps decoded samples, which chapter 10 tries to tell from real glyphs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cvcourse import config
from cvcourse.cache import cached, tensor_digest
from cvcourse.diffusion.forward import to_diffusion_range
from cvcourse.diffusion.latent import LatentSpace
from cvcourse.diffusion.samplers import ddim_sample
from cvcourse.diffusion.training import Snapshots, keep_ema, seconds_per_step, train_diffusion
from cvcourse.generative.training import train_vae
from cvcourse.models.autoencoder import KLAutoencoder
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.recipes import ch05_diffusion as ch05
from cvcourse.recipes.ch05_diffusion import DdpmRecipe, ddpm_unet, noise_schedule
from cvcourse.recipes.glyphs import training_glyphs
from cvcourse.recipes.judge import glyph_judge
from cvcourse.recipes.training import cached_training, require_finished, training_info
from cvcourse.seeding import seed_everything

CHAPTER = "07_latent_diffusion"
# Latents are sampled without clipping x_0, so on the leading grid: the trailing grid's first step, at the cosine
# schedule's degenerate top timestep, divides the model's error by sqrt(alpha_bar_T) ~ 3e-5 (see ddim_timesteps)
LATENT_SPACING = "leading"


@dataclass(frozen=True)
class AutoencoderRecipe:
    """Latent diffusion's first stage: a KL-regularised autoencoder to ``latent_channels`` x S/4 x S/4 latents."""

    version: int = 2
    image_size: int = 28
    train_size: int = 10_000
    latent_channels: int = 4
    width: int = 32
    beta: float = 1e-3  # the KL weight: small, so the latents keep the detail
    batch_size: int = 64
    steps: int = 1000
    lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class Settings(config.Settings):
    ddpm: DdpmRecipe = DdpmRecipe()  # chapter 05's pixel-space model, for the comparison
    autoencoder: AutoencoderRecipe = AutoencoderRecipe()
    latent: DdpmRecipe = DdpmRecipe(width=64, depth=1, patch_size=1, steps=7000, lr=1e-3)
    sample_count: int = 500
    checkpoint_every: int = 500
    snapshot_count: int = 200
    ddim_steps: int = 50
    ddim_eta: float = 1.0
    speed_count: int = 100
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "latent_confident_share": ">= 0.80", "latent_step_speedup": ">= 3", "autoencoder_psnr": ">= 20"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(ddpm=ch05.OVERRIDES["smoke"]["ddpm"], autoencoder=dict(train_size=2000, width=16, steps=300),
                  latent=dict(train_size=2000, width=32, steps=300, snapshot_every=100, ema_decay=0.99),
                  sample_count=32, checkpoint_every=100, snapshot_count=64, speed_count=8,
                  targets={"autoencoder_psnr": ">= 20", "latent_step_speedup": ">= 3"}),
    # not yet run on a GPU: the cpu profile's earlier floors until it has been
    "gpu": dict(ddpm=ch05.OVERRIDES["gpu"]["ddpm"], autoencoder=dict(width=64, batch_size=128, steps=6000),
                latent=dict(width=128, batch_size=128, steps=20_000, lr=2e-4, ema_decay=0.9995, snapshot_every=2000),
                sample_count=2000, checkpoint_every=2000, snapshot_count=500, speed_count=500,
                targets={"latent_confident_share": ">= 0.80", "latent_step_speedup": ">= 3",
                         "autoencoder_psnr": ">= 20"}),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 07's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)


def trained_autoencoder(cfg: config.Config, *, rebuild: bool = False,
                        progress: bool = False) -> tuple[KLAutoencoder, dict[str, Any]]:
    """Latent diffusion's first stage: the KL autoencoder trained with ``cfg.autoencoder``, cached; and its info."""
    recipe = cfg.autoencoder

    def build() -> KLAutoencoder:
        seed_everything(recipe.seed)
        images, _ = training_glyphs(recipe.train_size, recipe.image_size)
        return KLAutoencoder(recipe.latent_channels, width=recipe.width, mean_pixel=images.mean().item())

    def train(model: KLAutoencoder, checkpoint_dir: Path) -> dict[str, Any]:
        images, _ = training_glyphs(recipe.train_size, recipe.image_size)
        trainer = train_vae(model, images, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                            beta=recipe.beta, seed=recipe.seed, device=cfg.device, checkpoint_dir=checkpoint_dir,
                            checkpoint_every=cfg.checkpoint_every, resume=True, progress=progress)
        require_finished(trainer, recipe.steps)
        return training_info(trainer)

    return cached_training("glyph-autoencoder", recipe, build, train, rebuild=rebuild)


def latent_space(cfg: config.Config, autoencoder: KLAutoencoder) -> LatentSpace:
    """The autoencoder's latent space, scaled to unit variance on 1000 training glyphs (its ``scale_factor``)."""
    images, _ = training_glyphs(cfg.autoencoder.train_size, cfg.autoencoder.image_size)
    return LatentSpace(autoencoder).fit(images[:1000])


def latent_unet(cfg: config.Config, in_channels: int | None = None) -> DiffusionUNet:
    """The latent-space noise predictor of ``cfg.latent`` (untrained); ``in_channels=1`` builds the same network
    for glyph pixels, the pixel-space twin that :func:`latent_step_times` times it against."""
    return ddpm_unet(cfg.latent, in_channels=in_channels or cfg.autoencoder.latent_channels)


def trained_latent_ddpm(cfg: config.Config, *, rebuild: bool = False, progress: bool = False
                        ) -> tuple[DiffusionUNet, LatentSpace, dict[str, Any]]:
    """Latent diffusion's second stage: a DDPM on the autoencoder's scaled latents, cached; its latent space, info.

    The autoencoder comes from :func:`trained_autoencoder` (trained first when it is not cached); a ``rebuild``
    retrains only the diffusion model. The training glyphs are encoded once, as latent diffusion does.
    """
    recipe = cfg.latent
    autoencoder, _ = trained_autoencoder(cfg, progress=progress)
    space = latent_space(cfg, autoencoder)
    schedule = noise_schedule(recipe)

    def build() -> DiffusionUNet:
        seed_everything(recipe.seed)
        return latent_unet(cfg)

    def train(model: DiffusionUNet, checkpoint_dir: Path) -> dict[str, Any]:
        images, labels = training_glyphs(recipe.train_size, recipe.image_size)
        latents = space.encode(images)
        snapshots = Snapshots(recipe.snapshot_every, schedule, space.latent_shape(cfg.snapshot_count),
                              fcd=glyph_judge(recipe.image_size).fcd, decode=lambda z: space.decode(z.cpu()),
                              clip_x0=False)
        trainer = train_diffusion(model, schedule, latents, labels, steps=recipe.steps, batch_size=recipe.batch_size,
                                  lr=recipe.lr, ema_decay=recipe.ema_decay, min_snr_gamma=recipe.min_snr_gamma,
                                  pixels=False, seed=recipe.seed, device=cfg.device, checkpoint_dir=checkpoint_dir,
                                  checkpoint_every=cfg.checkpoint_every, resume=True, progress=progress,
                                  callbacks=[snapshots.callback()])
        require_finished(trainer, recipe.steps)
        keep_ema(model, trainer)
        return {**training_info(trainer), **snapshots.state()}

    autoencoder_digest = tensor_digest(*autoencoder.state_dict().values())
    model, info = cached_training("glyph-latent-ddpm", recipe, build, train, rebuild=rebuild,
                                  autoencoder=autoencoder_digest)
    return model, space, info


def latent_step_times(cfg: config.Config, latent_model: DiffusionUNet, space: LatentSpace,
                      images: torch.Tensor) -> dict[str, float]:
    """Seconds of one training step on the batch ``images`` (in [0, 1]): latent against pixel space.

    ``latent`` is ``latent_model`` with the batch encoded inside the step; ``pixel`` is the same U-Net built for
    pixels (:func:`latent_unet` with one channel), so the ratio is what the autoencoder saves the denoiser
    (Rombach et al. 2022, section 3); ``chapter05_pixel`` is chapter 05's smaller pixel U-Net, for reference.
    ``speedup`` is ``pixel / latent``.
    """
    schedule = noise_schedule(cfg.latent).to(images.device)
    pixels = to_diffusion_range(images)
    space.autoencoder.to(images.device)
    times = {"latent": seconds_per_step(latent_model, schedule, images, encode=space.encode),
             "pixel": seconds_per_step(latent_unet(cfg, in_channels=1).to(images.device), schedule, pixels),
             "chapter05_pixel": seconds_per_step(ddpm_unet(cfg.ddpm).to(images.device), schedule, pixels)}
    space.autoencoder.cpu()
    return {**times, "speedup": times["pixel"] / times["latent"]}


def cached_samples(cfg: config.Config, model: DiffusionUNet, space: LatentSpace, count: int, *, steps: int,
                   eta: float, seed: int, progress: bool = False) -> torch.Tensor:
    """``count`` latent-diffusion samples decoded to images in [0, 1] on the CPU: DDIM with ``steps`` and ``eta``
    from the noise of ``seed``, cached with a digest of both models' weights in the key."""
    model = model.to(cfg.device).eval()

    def make() -> dict[str, torch.Tensor]:
        latents = ddim_sample(model, noise_schedule(cfg.latent).to(cfg.device), space.latent_shape(count), steps=steps,
                              eta=eta, clip_x0=False, spacing=LATENT_SPACING,
                              generator=torch.Generator().manual_seed(seed), progress=progress)
        return {"images": space.decode(latents.cpu()).clamp(0, 1)}

    key = dict(model=tensor_digest(*model.state_dict().values()), spacing=LATENT_SPACING,
               autoencoder=tensor_digest(*space.autoencoder.state_dict().values()), count=count, steps=steps, eta=eta,
               seed=seed)
    return cached("glyph-latent-samples", key, make)["images"]
