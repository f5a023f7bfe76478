"""The generative chapters' headline experiments (chapters 03 and 04), judged offline by the glyph judge.

- ``gen.dcgan_glyphs``: a DCGAN's samples: confident share and class coverage, FCD beside its two real reference
  points, k-NN precision and recall;
- ``gen.cgan_glyphs``: a conditional GAN asked for each digit equally often: label accuracy, and its spread within a
  class relative to real glyphs' (a generator that ignores z has none);
- ``gen.vae_glyphs``: a VAE's reconstructions of held-out glyphs (PSNR) and its samples' confident share, from the prior
  N(0, I) and from a Gaussian mixture fitted to the training codes.

Each entry retrains its model (``rebuild=True``), so the time is measured, and leaves it in the cache for the
notebooks.
"""

from __future__ import annotations

import torch

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.generative.metrics import psnr
from cvcourse.recipes import ch03_gan, ch04_vae
from cvcourse.recipes.glyphs import SAMPLE_SEED, balanced_labels, quality_table, held_out_glyphs
from cvcourse.recipes.judge import glyph_judge


def _held_out(cfg: Config, image_size: int) -> torch.Tensor:
    return held_out_glyphs(cfg.sample_count, image_size)[0]


def dcgan_glyphs(cfg: Config) -> Outcome:
    judge = glyph_judge(cfg.gan.image_size, device=cfg.device)
    generator, info = ch03_gan.trained_gan(cfg, rebuild=True)
    samples = generator.sample(cfg.sample_count, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    report = judge.report(samples)
    return Outcome(report["confident_share"],
                   measured={"dcgan_class_coverage": report["class_coverage"], "train_s": info["seconds"]},
                   details={**quality_table(judge, samples, _held_out(cfg, cfg.gan.image_size)), "steps": info["steps"],
                            "judge_accuracy": judge.accuracy})


def cgan_glyphs(cfg: Config) -> Outcome:
    judge = glyph_judge(cfg.gan.image_size, device=cfg.device)
    generator, info = ch03_gan.trained_gan(cfg, conditional=True, rebuild=True)
    labels = balanced_labels(cfg.sample_count)
    samples = generator.sample(cfg.sample_count, labels=labels, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    report = judge.report(samples, labels)
    held_out, held_out_labels = held_out_glyphs(cfg.sample_count, cfg.gan.image_size)
    spread = judge.class_spread(samples, labels) / judge.class_spread(held_out, held_out_labels)
    return Outcome(report["label_accuracy"], measured={"train_s": info["seconds"]},
                   details={"confident_share": report["confident_share"], "class_coverage": report["class_coverage"],
                            "class_spread_vs_real": spread, **quality_table(judge, samples, held_out),
                            "steps": info["steps"]})


def vae_glyphs(cfg: Config) -> Outcome:
    judge = glyph_judge(cfg.vae.image_size, device=cfg.device)
    model, info = ch04_vae.trained_vae(cfg, rebuild=True)
    held_out = _held_out(cfg, cfg.vae.image_size)
    reconstruction = model.reconstruct(held_out)
    samples = model.sample(cfg.sample_count, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    report = judge.report(samples)
    prior = ch04_vae.mixture_prior(cfg, ch04_vae.training_codes(cfg, model))
    mixture_report = judge.report(model.sample(cfg.sample_count, generator=torch.Generator().manual_seed(SAMPLE_SEED),
                                               prior=prior))
    return Outcome(psnr(reconstruction, held_out).mean().item(),
                   measured={"prior_confident_share": report["confident_share"],
                             "mixture_confident_share": mixture_report["confident_share"], "train_s": info["seconds"]},
                   details={"class_coverage": report["class_coverage"], **quality_table(judge, samples, held_out),
                            "mixture_class_coverage": mixture_report["class_coverage"],
                            "mixture_fcd": mixture_report["fcd"], "steps": info["steps"]})


ENTRIES = (
    Entry("gen.dcgan_glyphs", "DCGAN confident share (judge confidence >= 0.9)", ch03_gan, "dcgan_confident_share",
          dcgan_glyphs),
    Entry("gen.cgan_glyphs", "conditional GAN label accuracy", ch03_gan, "cgan_label_accuracy", cgan_glyphs),
    Entry("gen.vae_glyphs", "VAE reconstruction PSNR on held-out glyphs (dB)", ch04_vae, "psnr", vae_glyphs),
)
