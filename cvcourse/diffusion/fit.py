"""Training the diffusion chapters' models on glyphs, cached by configuration so later chapters reuse them.

- ``glyph_diffusion(cfg)``: a DDPM noise predictor (``conditional=True``: class-conditional, trained with the
  label dropped for classifier-free guidance);
- ``glyph_guide(cfg)``: a smaller, shorter-trained version of it, autoguidance's guide;
- ``glyph_autoencoder(cfg)`` and ``glyph_latent_diffusion(cfg)``: latent diffusion's two stages.

Each returns the model from the cache when one with exactly the same settings was trained before on this
machine (by a chapter or ``make bench``), else trains it now with checkpoints, so an interrupted run resumes.
The diffusion models are the exponential moving average of the weights (Ho et al. 2020, Appendix B: EMA
decay 0.9999 over 800k steps). Over a few thousand steps whose learning rate decays to zero, a short average is
best: 0.999 and longer still remember the early weights (docs/results.md). Their ``info`` holds the history (the
loss, and the FCD of the snapshots taken during training), the snapshots' galleries, the seconds and the steps.
``glyph_samples`` caches a sampler's output for a given model, since 1000-step DDPM sampling takes minutes;
``seconds_per_step`` times a training step, to compare pixel-space and latent diffusion.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvcourse.cache import cached, cached_model, tensor_digest
from cvcourse.config import Config
from cvcourse.data import shuffled_batches
from cvcourse.device import median_seconds, pick_device, seed_everything
from cvcourse.diffusion.forward import diffusion_loss, diffusion_step, to_diffusion_range, to_image_range
from cvcourse.diffusion.latent import LatentSpace
from cvcourse.diffusion.samplers import ddim_sample, ddpm_sample
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.generative.fit import train_vae, training_glyphs, training_info
from cvcourse.history import Every, History
from cvcourse.models.autoencoder import KLAutoencoder
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.quality import glyph_quality
from cvcourse.train import Trainer, require_finished

DIFFUSION_VERSION, AUTOENCODER_VERSION = 2, 2  # bump when an architecture or a training recipe changes
SNAPSHOT_SEED = 99  # the fixed noise every snapshot gallery starts from, so they show one set of samples evolving
SNAPSHOT_SAMPLER_STEPS = 20  # DDIM steps per snapshot: cheap, and close enough to track progress
GALLERY_SIZE = 16


def glyph_schedule(cfg: Config) -> NoiseSchedule:
    """The noise schedule every diffusion model of the chapters is trained and sampled with."""
    schedules = {"linear": NoiseSchedule.linear, "cosine": NoiseSchedule.cosine}
    if cfg.schedule not in schedules:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(schedules)}.")
    return schedules[cfg.schedule](cfg.timesteps)


class Snapshots:
    """Every ``every`` steps: DDIM samples of the EMA model, their FCD logged as ``fcd``, a gallery kept.

    ``decode`` maps the sampler's output to images in [0, 1]: ``to_image_range`` for pixels (sampled with the
    predicted x_0 clipped to [-1, 1]), the decoder for latents (not clipped). Each snapshot draws from the same
    seeded noise, so the galleries show one set of samples taking shape.
    """

    def __init__(self, every: int, schedule: NoiseSchedule, shape: tuple[int, ...], *, image_size: int,
                 decode: Callable[[torch.Tensor], torch.Tensor] = to_image_range, clip_x0: bool = True,
                 labels: torch.Tensor | None = None) -> None:
        self.every, self.schedule, self.shape, self.labels = every, schedule, shape, labels
        self.decode, self.clip_x0 = decode, clip_x0
        self.steps: list[int] = []
        self.galleries: list[torch.Tensor] = []
        self.quality = glyph_quality(image_size)

    def callback(self) -> Every:
        return Every(self.every, self)

    @torch.no_grad()
    def __call__(self, trainer: Trainer) -> None:
        model = trainer.ema.module
        model.eval()
        x = ddim_sample(model, self.schedule.to(trainer.device), self.shape, steps=SNAPSHOT_SAMPLER_STEPS,
                        labels=None if self.labels is None else self.labels.to(trainer.device),
                        generator=torch.Generator().manual_seed(SNAPSHOT_SEED), clip_x0=self.clip_x0)
        images = self.decode(x).cpu()
        trainer.history.log(trainer.step, fcd=self.quality.fcd(images))
        self.steps.append(trainer.step)
        self.galleries.append(images[:GALLERY_SIZE].clone())

    def state(self) -> dict[str, Any]:
        return {"snapshot_steps": self.steps,
                "galleries": torch.stack(self.galleries) if self.galleries else torch.empty(0)}


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int,
                  warmup_fraction: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate times ``step / warmup`` for the warm-up steps, then ``(1 + cos(pi * progress)) / 2``."""
    warmup = max(1, round(warmup_fraction * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_diffusion(model: DiffusionUNet, schedule: NoiseSchedule, x: torch.Tensor, labels: torch.Tensor, *,
                    steps: int, batch_size: int, lr: float, ema_decay: float, conditional: bool = False,
                    drop_label_prob: float = 0.0, min_snr_gamma: float | None = None, pixels: bool = True,
                    seed: int = 0, device: str | torch.device | None = None, checkpoint_dir: str | Path | None = None,
                    checkpoint_every: int = 0, progress: bool = True, callbacks=()) -> Trainer:
    """DDPM training (Algorithm 1) with Adam and an EMA of the weights; returns the Trainer (``trainer.ema``).

    ``x`` holds images in [0, 1] (``pixels=True``) or latents already in the model's range. The learning rate
    warms up over the first 5% of the steps and then follows a cosine down to zero (:func:`warmup_cosine`): with a
    budget of a few thousand steps, the decay is what lets the weights settle.
    """
    step = diffusion_step(schedule.to(pick_device(device)), conditional=conditional, drop_label_prob=drop_label_prob,
                          min_snr_gamma=min_snr_gamma, pixels=pixels)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    trainer = Trainer(model, optimizer, step, device=device, ema_decay=ema_decay,
                      schedulers=warmup_cosine(optimizer, steps), checkpoint_dir=checkpoint_dir,
                      checkpoint_every=checkpoint_every, progress=progress, callbacks=callbacks)
    trainer.fit(shuffled_batches(x, labels, batch_size=batch_size, seed=seed), steps=steps,
                resume=checkpoint_dir is not None)
    return trainer


def _keep_ema(model: nn.Module, trainer: Trainer) -> None:
    """Copy the EMA weights into ``model``: what is cached and sampled from."""
    model.load_state_dict(trainer.ema.module.state_dict())


def _info(trainer: Trainer, snapshots: Snapshots) -> dict[str, Any]:
    return {**training_info(trainer), **snapshots.state()}


def _with_history(info: dict[str, Any]) -> dict[str, Any]:
    history = History()
    history.load_state_dict(info["history"])
    return {**info, "history": history}


def pixel_unet(cfg: Config, num_classes: int | None = None, *, width: int | None = None) -> DiffusionUNet:
    """The pixel-space noise predictor of ``cfg`` (untrained): the U-Net the chapters train on glyphs.

    ``width`` overrides ``unet_width``: autoguidance's guide is the same U-Net, narrower.
    """
    return DiffusionUNet(1, base_width=width or cfg.unet_width, depth=cfg.unet_depth, num_classes=num_classes,
                         block=cfg.unet_block, attention=cfg.unet_attention, patch_size=cfg.patch_size)


def latent_unet(cfg: Config, in_channels: int | None = None) -> DiffusionUNet:
    """The latent-space noise predictor of ``cfg`` (untrained): the same kind of U-Net on ``latent_channels``.

    ``in_channels=1`` builds the same network for glyph pixels, the pixel-space twin that
    :func:`latent_step_times` times it against.
    """
    return DiffusionUNet(in_channels or cfg.latent_channels, base_width=cfg.latent_unet_width,
                         depth=cfg.latent_unet_depth, block=cfg.unet_block, attention=cfg.unet_attention)


def diffusion_settings(cfg: Config, *, conditional: bool) -> dict[str, Any]:
    """Everything a trained pixel-space diffusion model depends on: the cache key of :func:`glyph_diffusion`."""
    return dict(version=DIFFUSION_VERSION, conditional=conditional,
                drop_label_prob=cfg.drop_label_prob if conditional else 0.0, schedule=cfg.schedule,
                timesteps=cfg.timesteps, image_size=cfg.image_size, train_size=cfg.train_size, width=cfg.unet_width,
                depth=cfg.unet_depth, block=cfg.unet_block, attention=cfg.unet_attention, patch_size=cfg.patch_size,
                batch_size=cfg.batch_size, steps=cfg.steps, lr=cfg.lr, min_snr_gamma=cfg.min_snr_gamma,
                ema_decay=cfg.ema_decay, snapshot_every=cfg.snapshot_every, seed=cfg.seed)


def glyph_diffusion(cfg: Config, *, conditional: bool = False, rebuild: bool = False,
                    progress: bool = False) -> tuple[DiffusionUNet, dict[str, Any]]:
    """A DDPM noise predictor (EMA weights) trained on glyphs with ``cfg``'s settings, cached; and its info."""
    num_classes = 10 if conditional else None
    name, settings = f"glyph-{'cfg-' if conditional else ''}ddpm", diffusion_settings(cfg, conditional=conditional)
    return _glyph_ddpm(cfg, name, settings, lambda: pixel_unet(cfg, num_classes), rebuild=rebuild, progress=progress)


def glyph_guide(cfg: Config, *, rebuild: bool = False, progress: bool = False) -> tuple[DiffusionUNet, dict[str, Any]]:
    """Autoguidance's guide for ``glyph_diffusion(cfg)``: a bad version of it, cached; and its info.

    The same U-Net and recipe, narrower (``guide_unet_width``) and trained for fewer steps (``guide_steps``, EMA
    decay ``guide_ema_decay``): Karras et al. 2024 degrade the guide in both ways, so that its errors are the good
    model's, only larger.
    """
    settings = {**diffusion_settings(cfg, conditional=False), "width": cfg.guide_unet_width,
                "steps": cfg.guide_steps, "ema_decay": cfg.guide_ema_decay}
    return _glyph_ddpm(cfg, "glyph-guide-ddpm", settings, lambda: pixel_unet(cfg, width=cfg.guide_unet_width),
                       rebuild=rebuild, progress=progress)


def _glyph_ddpm(cfg: Config, name: str, settings: dict[str, Any], make: Callable[[], DiffusionUNet], *,
                rebuild: bool, progress: bool) -> tuple[DiffusionUNet, dict[str, Any]]:
    """Train (or load from the cache) the pixel-space DDPM ``make()`` on glyphs; keep its EMA.

    ``settings`` (from :func:`diffusion_settings`) is the cache key, and its ``steps``, ``ema_decay``,
    ``conditional`` and ``drop_label_prob`` are what the model is trained with.
    """
    schedule = glyph_schedule(cfg)
    steps, ema_decay, conditional = settings["steps"], settings["ema_decay"], settings["conditional"]

    def build() -> DiffusionUNet:
        seed_everything(cfg.seed)
        return make()

    def train(model: nn.Module, checkpoint_dir: Path) -> dict[str, Any]:
        images, labels = training_glyphs(cfg)
        snapshot_labels = torch.arange(cfg.snapshot_count) % 10 if conditional else None
        snapshots = Snapshots(cfg.snapshot_every, schedule, (cfg.snapshot_count, 1, cfg.image_size, cfg.image_size),
                              image_size=cfg.image_size, labels=snapshot_labels)
        trainer = train_diffusion(model, schedule, images, labels, steps=steps, batch_size=cfg.batch_size,
                                  lr=cfg.lr, ema_decay=ema_decay, conditional=conditional,
                                  drop_label_prob=settings["drop_label_prob"], min_snr_gamma=cfg.min_snr_gamma,
                                  seed=cfg.seed, device=cfg.device, checkpoint_dir=checkpoint_dir,
                                  checkpoint_every=cfg.checkpoint_every, progress=progress,
                                  callbacks=[snapshots.callback()])
        require_finished(trainer, steps)
        _keep_ema(model, trainer)
        return _info(trainer, snapshots)

    model, info = cached_model(name, settings, build, train, rebuild=rebuild)
    return model, _with_history(info)


def autoencoder_settings(cfg: Config) -> dict[str, Any]:
    """Everything the latent autoencoder depends on: the cache key of :func:`glyph_autoencoder`."""
    return dict(version=AUTOENCODER_VERSION, image_size=cfg.image_size, train_size=cfg.train_size,
                latent_channels=cfg.latent_channels, width=cfg.autoencoder_width, beta=cfg.autoencoder_beta,
                batch_size=cfg.batch_size, steps=cfg.autoencoder_steps, lr=cfg.autoencoder_lr, seed=cfg.seed)


def glyph_autoencoder(cfg: Config, *, rebuild: bool = False,
                      progress: bool = False) -> tuple[KLAutoencoder, dict[str, Any]]:
    """Latent diffusion's first stage: a KL-regularised autoencoder trained on glyphs, cached; and its info."""

    def build() -> KLAutoencoder:
        seed_everything(cfg.seed)
        images, _ = training_glyphs(cfg)
        return KLAutoencoder(cfg.latent_channels, width=cfg.autoencoder_width, mean_pixel=images.mean().item())

    def train(model: nn.Module, checkpoint_dir: Path) -> dict[str, Any]:
        images, _ = training_glyphs(cfg)
        trainer = train_vae(model, images, steps=cfg.autoencoder_steps, batch_size=cfg.batch_size,
                            lr=cfg.autoencoder_lr, beta=cfg.autoencoder_beta, seed=cfg.seed, device=cfg.device,
                            checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.checkpoint_every, progress=progress)
        require_finished(trainer, cfg.autoencoder_steps)
        return training_info(trainer)

    model, info = cached_model("glyph-autoencoder", autoencoder_settings(cfg), build, train, rebuild=rebuild)
    return model, _with_history(info)


def glyph_latent_space(cfg: Config, autoencoder: KLAutoencoder) -> LatentSpace:
    """The autoencoder's latent space, scaled to unit variance on the training glyphs (its ``scale_factor``)."""
    images, _ = training_glyphs(cfg)
    return LatentSpace(autoencoder).fit(images[:1000])


def glyph_latent_diffusion(cfg: Config, *, rebuild: bool = False, progress: bool = False
                           ) -> tuple[DiffusionUNet, LatentSpace, dict[str, Any]]:
    """Latent diffusion's second stage: a DDPM on the autoencoder's scaled latents, cached; its latent space, info.

    The autoencoder comes from :func:`glyph_autoencoder` (trained first when it is not cached); a ``rebuild``
    retrains only the diffusion model. The training glyphs are encoded once, as latent diffusion does.
    """
    autoencoder, _ = glyph_autoencoder(cfg, progress=progress)
    space = glyph_latent_space(cfg, autoencoder)
    settings = dict(version=DIFFUSION_VERSION, autoencoder=tensor_digest(*autoencoder.state_dict().values()),
                    schedule=cfg.schedule, timesteps=cfg.timesteps, width=cfg.latent_unet_width,
                    depth=cfg.latent_unet_depth, block=cfg.unet_block, attention=cfg.unet_attention,
                    batch_size=cfg.batch_size, steps=cfg.latent_steps, lr=cfg.latent_lr,
                    min_snr_gamma=cfg.min_snr_gamma, ema_decay=cfg.ema_decay, snapshot_every=cfg.snapshot_every,
                    seed=cfg.seed)
    schedule = glyph_schedule(cfg)

    def build() -> DiffusionUNet:
        seed_everything(cfg.seed)
        return latent_unet(cfg)

    def train(model: nn.Module, checkpoint_dir: Path) -> dict[str, Any]:
        images, labels = training_glyphs(cfg)
        latents = space.encode(images)
        snapshots = Snapshots(cfg.snapshot_every, schedule, space.latent_shape(cfg.snapshot_count),
                              image_size=cfg.image_size, decode=lambda z: space.decode(z.cpu()), clip_x0=False)
        trainer = train_diffusion(model, schedule, latents, labels, steps=cfg.latent_steps,
                                  batch_size=cfg.batch_size, lr=cfg.latent_lr, ema_decay=cfg.ema_decay,
                                  min_snr_gamma=cfg.min_snr_gamma, pixels=False,
                                  seed=cfg.seed, device=cfg.device, checkpoint_dir=checkpoint_dir,
                                  checkpoint_every=cfg.checkpoint_every, progress=progress,
                                  callbacks=[snapshots.callback()])
        require_finished(trainer, cfg.latent_steps)
        _keep_ema(model, trainer)
        return _info(trainer, snapshots)

    model, info = cached_model("glyph-latent-ddpm", settings, build, train, rebuild=rebuild)
    return model, space, _with_history(info)


def glyph_samples(model: DiffusionUNet, schedule: NoiseSchedule, shape: tuple[int, ...], *, sampler: str = "ddpm",
                  steps: int | None = None, eta: float = 0.0, labels: torch.Tensor | None = None,
                  guidance_scale: float = 0.0, seed: int = 0, rebuild: bool = False,
                  progress: bool = False) -> tuple[torch.Tensor, float]:
    """Samples of ``shape`` (B, C, H, W) in [0, 1] from a pixel-space model and the sampler's seconds, cached.

    ``sampler`` is ``"ddpm"`` (every timestep) or ``"ddim"`` (``steps``, ``eta``). The cache key holds a digest
    of the model's weights and every sampler setting, so a retrained model or another setting samples afresh;
    the seconds are those measured when the samples were drawn.
    """
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"unknown sampler {sampler!r}; choose 'ddpm' or 'ddim'.")
    device = next(model.parameters()).device
    settings = dict(model=tensor_digest(*model.state_dict().values()), schedule=tensor_digest(schedule.betas),
                    shape=list(shape), sampler=sampler, steps=steps if sampler == "ddim" else schedule.T,
                    eta=eta if sampler == "ddim" else 1.0,
                    labels=None if labels is None else tensor_digest(labels), guidance_scale=guidance_scale,
                    seed=seed, device=device.type)

    def make() -> dict[str, Any]:
        options = dict(labels=None if labels is None else labels.to(device), guidance_scale=guidance_scale,
                       generator=torch.Generator().manual_seed(seed), progress=progress)
        model.eval()
        started = time.perf_counter()
        if sampler == "ddpm":
            x = ddpm_sample(model, schedule.to(device), shape, **options)
        else:
            x = ddim_sample(model, schedule.to(device), shape, steps=steps or 50, eta=eta, **options)
        return {"images": to_image_range(x).cpu(), "seconds": time.perf_counter() - started}

    entry = cached("glyph-samples", settings, make, rebuild=rebuild)
    return entry["images"], entry["seconds"]


def seconds_per_step(model: DiffusionUNet, schedule: NoiseSchedule, x0: torch.Tensor, *,
                     encode: Callable[[torch.Tensor], torch.Tensor] | None = None, repeats: int = 20,
                     warmup: int = 3) -> float:
    """The median seconds of one training step (loss, backward, Adam) on the batch ``x0``, timed on a copy.

    ``encode`` (e.g. a frozen encoder) runs inside the timed step first, so latent diffusion pays for encoding
    its batch, as it does when the latents are not precomputed. The model itself is left untouched.
    """
    model = deepcopy(model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    schedule = schedule.to(x0.device)

    def step() -> None:
        x = encode(x0) if encode is not None else x0
        loss = diffusion_loss(model, schedule, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return median_seconds(step, x0.device, repeats=repeats, warmup=warmup)


def latent_step_times(cfg: Config, latent_model: DiffusionUNet, space: LatentSpace,
                      images: torch.Tensor) -> dict[str, float]:
    """Seconds of one training step on the batch ``images`` (in [0, 1]): latent against pixel space.

    ``latent`` is ``latent_model`` with the batch encoded inside the step; ``pixel`` is the same U-Net built for
    pixels (:func:`latent_unet` with one channel), so the ratio is what the autoencoder saves the denoiser
    (Rombach et al. 2022, section 3); ``chapter05_pixel`` is chapter 05's smaller pixel U-Net (:func:`pixel_unet`),
    for reference. ``speedup`` is ``pixel / latent``.
    """
    schedule = glyph_schedule(cfg).to(images.device)
    pixels = to_diffusion_range(images)
    space.autoencoder.to(images.device)
    times = {"latent": seconds_per_step(latent_model, schedule, images, encode=space.encode),
             "pixel": seconds_per_step(latent_unet(cfg, in_channels=1).to(images.device), schedule, pixels),
             "chapter05_pixel": seconds_per_step(pixel_unet(cfg).to(images.device), schedule, pixels)}
    space.autoencoder.cpu()
    return {**times, "speedup": times["pixel"] / times["latent"]}
