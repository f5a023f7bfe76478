"""The generative chapters' headline experiments (chapters 03 and 04, one block of settings), judged offline.

- ``gen.dcgan_glyphs``: a DCGAN's samples: precision and coverage, FCD beside its two real reference points;
- ``gen.cgan_glyphs``: a conditional GAN asked for each digit equally often: label accuracy;
- ``gen.vae_glyphs``: a VAE's reconstructions of held-out glyphs (PSNR) and its samples' precision, from the prior
  N(0, I) and from a Gaussian mixture fitted to the training codes.

Each entry retrains its model (``rebuild=True``), so the time is measured, and leaves it in the cache for the
notebooks. Samples and held-out images are the same count, so every FCD has the same small-sample bias.
"""

from __future__ import annotations

import torch

from cvcourse.bench import Outcome, register
from cvcourse.config import Config
from cvcourse.generative.fit import glyph_gan, glyph_vae, glyph_vae_codes, glyph_vae_prior, held_out_glyphs
from cvcourse.quality import ImageQuality, glyph_quality, psnr

SAMPLE_SEED = 1234


def requested_labels(count: int, num_classes: int = 10) -> torch.Tensor:
    """``count`` labels, every class equally often (0, 1, ..., 9, 0, 1, ...)."""
    return torch.arange(count) % num_classes


def fcd_table(quality: ImageQuality, cfg: Config, samples: torch.Tensor) -> dict[str, float]:
    """The model's FCD with the two real reference points every FCD in the course is printed with."""
    held_out, _ = held_out_glyphs(cfg)
    references = quality.reference_points(held_out)
    return {"fcd": quality.fcd(samples), "fcd_held_out_real": references["held_out"],
            "fcd_blurred_real": references["blurred"], "fcd_noised_real": references["noised"]}


@register("gen.dcgan_glyphs", metric="DCGAN sample precision (judge confidence >= 0.9)", target=">= 0.90",
          settings="03_gan")
def dcgan_glyphs(cfg: Config) -> Outcome:
    quality = glyph_quality(cfg.image_size, device=cfg.device)
    generator, info = glyph_gan(cfg, rebuild=True)
    samples = generator.sample(cfg.sample_count, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    report = quality.report(samples)
    return Outcome(report["precision"],
                   checks={"coverage>=0.90": report["coverage"] >= 0.90, "train_s<=600": info["seconds"] <= 600},
                   details={"coverage": report["coverage"], **fcd_table(quality, cfg, samples),
                            "train_s": info["seconds"], "steps": info["steps"], "judge_accuracy": quality.accuracy})


@register("gen.cgan_glyphs", metric="conditional GAN label accuracy", target=">= 0.90", settings="03_gan")
def cgan_glyphs(cfg: Config) -> Outcome:
    quality = glyph_quality(cfg.image_size, device=cfg.device)
    generator, info = glyph_gan(cfg, conditional=True, rebuild=True)
    labels = requested_labels(cfg.sample_count)
    samples = generator.sample(cfg.sample_count, labels=labels, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    report = quality.report(samples, labels)
    return Outcome(report["label_accuracy"], checks={"train_s<=600": info["seconds"] <= 600},
                   details={"precision": report["precision"], "coverage": report["coverage"],
                            **fcd_table(quality, cfg, samples), "train_s": info["seconds"], "steps": info["steps"]})


@register("gen.vae_glyphs", metric="VAE reconstruction PSNR on held-out glyphs (dB)", target=">= 20",
          settings="04_vae")
def vae_glyphs(cfg: Config) -> Outcome:
    quality = glyph_quality(cfg.image_size, device=cfg.device)
    model, info = glyph_vae(cfg, rebuild=True)
    held_out, _ = held_out_glyphs(cfg)
    reconstruction = model.reconstruct(held_out)
    samples = model.sample(cfg.sample_count, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    report = quality.report(samples)
    mixture_samples = model.sample(cfg.sample_count, generator=torch.Generator().manual_seed(SAMPLE_SEED),
                                   prior=glyph_vae_prior(cfg, glyph_vae_codes(cfg, model)))
    mixture_report = quality.report(mixture_samples)
    return Outcome(psnr(reconstruction, held_out).mean().item(),
                   checks={"sample_precision>=0.70": report["precision"] >= 0.70,
                           "mixture_sample_precision>=0.70": mixture_report["precision"] >= 0.70,
                           "train_s<=300": info["seconds"] <= 300},
                   details={"sample_precision": report["precision"], "coverage": report["coverage"],
                            **fcd_table(quality, cfg, samples),
                            "mixture_sample_precision": mixture_report["precision"],
                            "mixture_coverage": mixture_report["coverage"], "mixture_fcd": mixture_report["fcd"],
                            "train_s": info["seconds"], "steps": info["steps"]})
