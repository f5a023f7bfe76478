"""The diffusion chapters' headline experiments (chapters 05 and 06, one block of settings), judged offline.

- ``diff.ddpm_glyphs``: a DDPM's 1000-step ancestral samples: precision and coverage, FCD beside its two real
  reference points;
- ``diff.ddim_speed``: 50-step DDIM against 1000-step DDPM on the same model: speed-up and FCD ratio, at the
  profile's eta (``ddim_eta``), with the deterministic eta = 0 measured beside it;
- ``diff.cfg_glyphs``: a class-conditional model under classifier-free guidance: label accuracy at the chosen
  scale w, against w = 0, with the whole sweep in the details;
- ``diff.autoguided_glyphs``: ``diff.ddpm_glyphs``' model guided by a smaller, shorter-trained version of itself
  (autoguidance), sampled with 50-step DDIM as chapter 06 does: precision at the chosen w against the model alone
  (w = 0), the whole sweep in the details;
- ``diff.latent_glyphs``: diffusion in an autoencoder's latent space: sample precision, and the speed of a
  training step against the same U-Net in pixel space at the same batch size.

Entries that train retrain (``rebuild=True``), so the time is measured, and leave the model in the cache for the
notebooks; ``diff.ddim_speed`` reuses ``diff.ddpm_glyphs``' model and DDPM samples when they are cached, and
``diff.autoguided_glyphs`` its model (it retrains only the guide).
"""

from __future__ import annotations

import time

import torch

from cvcourse.bench import Outcome, register
from cvcourse.config import Config
from cvcourse.diffusion import AutoGuided, ddim_sample, ddpm_sample
from cvcourse.diffusion.fit import (
    glyph_diffusion,
    glyph_guide,
    glyph_latent_diffusion,
    glyph_samples,
    glyph_schedule,
    latent_step_times,
)
from cvcourse.experiments.generative import SAMPLE_SEED, fcd_table, requested_labels
from cvcourse.generative.fit import training_glyphs
from cvcourse.quality import glyph_quality


def image_shape(cfg: Config, count: int) -> tuple[int, int, int, int]:
    return (count, 1, cfg.image_size, cfg.image_size)


@register("diff.ddpm_glyphs", metric="DDPM sample precision (1000-step ancestral sampling)", target=">= 0.90",
          settings="05_diffusion")
def ddpm_glyphs(cfg: Config) -> Outcome:
    quality = glyph_quality(cfg.image_size, device=cfg.device)
    model, info = glyph_diffusion(cfg, rebuild=True)
    samples, sample_seconds = glyph_samples(model.to(cfg.device), glyph_schedule(cfg),
                                            image_shape(cfg, cfg.sample_count), seed=SAMPLE_SEED, rebuild=True)
    report = quality.report(samples)
    return Outcome(report["precision"],
                   checks={"coverage>=0.90": report["coverage"] >= 0.90, "train_s<=900": info["seconds"] <= 900},
                   details={"coverage": report["coverage"], **fcd_table(quality, cfg, samples),
                            "train_s": info["seconds"], "steps": info["steps"], "sample_s": sample_seconds,
                            "samples": cfg.sample_count})


def _timed(sample) -> float:
    started = time.perf_counter()
    sample()
    return time.perf_counter() - started


@register("diff.ddim_speed", metric="50-step DDIM (eta as set) speed-up over 1000-step DDPM sampling", target=">= 10",
          settings="05_diffusion")
def ddim_speed(cfg: Config) -> Outcome:
    quality = glyph_quality(cfg.image_size, device=cfg.device)
    model, _ = glyph_diffusion(cfg)
    model = model.to(cfg.device)
    schedule = glyph_schedule(cfg)
    shape = image_shape(cfg, cfg.sample_count)
    ddpm, _ = glyph_samples(model, schedule, shape, seed=SAMPLE_SEED)
    ddim = {eta: glyph_samples(model, schedule, shape, sampler="ddim", steps=cfg.ddim_steps, eta=eta, seed=SAMPLE_SEED,
                               rebuild=True)[0] for eta in sorted({0.0, cfg.ddim_eta})}
    fcd_ddpm, fcd_ddim = quality.fcd(ddpm), {eta: quality.fcd(samples) for eta, samples in ddim.items()}
    # both samplers timed afresh, one after the other, on the same batch
    schedule, speed_shape = schedule.to(cfg.device), image_shape(cfg, cfg.speed_count)
    ddpm_s = _timed(lambda: ddpm_sample(model, schedule, speed_shape, generator=torch.Generator().manual_seed(0)))
    ddim_s = _timed(lambda: ddim_sample(model, schedule, speed_shape, steps=cfg.ddim_steps, eta=cfg.ddim_eta,
                                        generator=torch.Generator().manual_seed(0)))
    ratio = fcd_ddim[cfg.ddim_eta] / fcd_ddpm
    details = {"eta": cfg.ddim_eta, "fcd_ratio": ratio, "fcd_ddpm": fcd_ddpm, "precision_ddpm": quality.precision(ddpm)}
    for eta, samples in ddim.items():
        details.update({f"fcd_ddim_eta{eta:g}": fcd_ddim[eta], f"precision_ddim_eta{eta:g}": quality.precision(samples)})
    details.update({"ddpm_s": ddpm_s, "ddim_s": ddim_s, "timed_batch": cfg.speed_count, "ddim_steps": cfg.ddim_steps})
    return Outcome(ddpm_s / ddim_s, checks={"fcd_ratio<=1.25": ratio <= 1.25}, details=details)


@register("diff.cfg_glyphs", metric="label accuracy under classifier-free guidance at the chosen w",
          target=">= 0.95", settings="06_guided_latent_diffusion")
def cfg_glyphs(cfg: Config) -> Outcome:
    quality = glyph_quality(cfg.image_size, device=cfg.device)
    model, info = glyph_diffusion(cfg, conditional=True, rebuild=True)
    model, schedule = model.to(cfg.device), glyph_schedule(cfg)
    labels = requested_labels(cfg.sample_count)
    sweep = {}
    for w in sorted({0.0, *cfg.guidance_scales, cfg.guidance_scale}):
        samples, _ = glyph_samples(model, schedule, image_shape(cfg, cfg.sample_count), sampler="ddim",
                                   steps=cfg.ddim_steps, eta=cfg.ddim_eta, labels=labels, guidance_scale=w,
                                   seed=SAMPLE_SEED, rebuild=True)
        sweep[w] = quality.report(samples, labels)
    chosen, unguided = sweep[cfg.guidance_scale], sweep[0.0]
    details = {"w": cfg.guidance_scale, "label_accuracy_w0": unguided["label_accuracy"],
               "train_s": info["seconds"], "steps": info["steps"]}
    for w, report in sweep.items():
        details.update({f"w={w:g} {name}": report[name] for name in ("label_accuracy", "precision", "coverage", "fcd")})
    return Outcome(chosen["label_accuracy"],
                   checks={"above_w0": chosen["label_accuracy"] > unguided["label_accuracy"]}, details=details)


@register("diff.autoguided_glyphs", metric="autoguided DDPM sample precision (50-step DDIM, eta as set)",
          target=">= 0.90", settings="06_guided_latent_diffusion")
def autoguided_glyphs(cfg: Config) -> Outcome:
    quality = glyph_quality(cfg.image_size, device=cfg.device)
    model, info = glyph_diffusion(cfg)
    guide, guide_info = glyph_guide(cfg, rebuild=True)
    model, guide, schedule = model.to(cfg.device), guide.to(cfg.device), glyph_schedule(cfg)
    sweep = {}
    for w in sorted({0.0, *cfg.autoguidance_scales, cfg.autoguidance_scale}):
        samples, _ = glyph_samples(AutoGuided(model, guide, w) if w else model, schedule,
                                   image_shape(cfg, cfg.sample_count), sampler="ddim", steps=cfg.ddim_steps,
                                   eta=cfg.ddim_eta, seed=SAMPLE_SEED, rebuild=True)
        sweep[w] = quality.report(samples)
    chosen, alone = sweep[cfg.autoguidance_scale], sweep[0.0]
    train_s = info["seconds"] + guide_info["seconds"]  # the model and its guide
    details = {"w": cfg.autoguidance_scale, "precision_alone": alone["precision"], "coverage": chosen["coverage"],
               "fcd": chosen["fcd"], "fcd_alone": alone["fcd"], "train_s": train_s,
               "guide_train_s": guide_info["seconds"], "guide_steps": guide_info["steps"],
               "guide_width": cfg.guide_unet_width, "eta": cfg.ddim_eta}
    for w, report in sweep.items():
        details.update({f"w={w:g} {name}": report[name] for name in ("precision", "coverage", "fcd")})
    return Outcome(chosen["precision"],
                   checks={"coverage>=0.90": chosen["coverage"] >= 0.90,
                           "fcd_below_alone": chosen["fcd"] < alone["fcd"], "train_s<=900": train_s <= 900},
                   details=details)


@register("diff.latent_glyphs", metric="latent diffusion sample precision", target=">= 0.80",
          settings="06_guided_latent_diffusion")
def latent_glyphs(cfg: Config) -> Outcome:
    quality = glyph_quality(cfg.image_size, device=cfg.device)
    model, space, info = glyph_latent_diffusion(cfg, rebuild=True)
    model, schedule = model.to(cfg.device), glyph_schedule(cfg).to(cfg.device)
    latents = ddim_sample(model, schedule, space.latent_shape(cfg.sample_count), steps=cfg.ddim_steps,
                          eta=cfg.ddim_eta, clip_x0=False, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    samples = space.decode(latents.cpu())
    report = quality.report(samples)
    images, _ = training_glyphs(cfg)
    times = latent_step_times(cfg, model, space, images[:cfg.batch_size].to(cfg.device))
    return Outcome(report["precision"], checks={"step_speedup>=3": times["speedup"] >= 3},
                   details={"coverage": report["coverage"], **fcd_table(quality, cfg, samples),
                            "step_speedup": times["speedup"], "latent_step_s": times["latent"],
                            "pixel_step_s": times["pixel"], "chapter05_pixel_step_s": times["chapter05_pixel"],
                            "latent_shape": list(space.latent_shape(1)[1:]), "scale_factor": space.scale_factor,
                            "train_s": info["seconds"], "steps": info["steps"]})
