"""The diffusion chapters' headline experiments (chapters 05 and 06), judged offline by the glyph judge.

- ``diff.ddpm_glyphs``: a DDPM's 1000-step ancestral samples: confident share and class coverage, FCD beside its two
  real reference points, k-NN precision and recall;
- ``diff.ddim_speed``: 50-step DDIM against 1000-step DDPM on the same model: speed-up and FCD ratio, at the
  profile's eta (``ddim_eta``), with the deterministic eta = 0 measured beside it;
- ``diff.cfg_glyphs``: a class-conditional model under classifier-free guidance: label accuracy at the chosen
  scale w, against w = 0, with the whole sweep in the details;
- ``diff.autoguided_glyphs``: ``diff.ddpm_glyphs``' model guided by a smaller, shorter-trained version of itself
  (autoguidance), sampled with 50-step DDIM as chapter 06 does: confident share at the chosen w against the model alone
  (w = 0), the whole sweep in the details;
- ``diff.latent_glyphs``: diffusion in an autoencoder's latent space: confident share, and the speed of a
  training step against the same U-Net in pixel space at the same batch size.

Entries that train retrain (``rebuild=True``), so the time is measured, and leave the model in the cache for the
notebooks; ``diff.ddim_speed`` reuses ``diff.ddpm_glyphs``' model and DDPM samples when they are cached, and
``diff.autoguided_glyphs`` its model (it retrains only the guide).
"""

from __future__ import annotations

import time

import torch

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.diffusion import AutoGuided, ddim_sample, ddpm_sample
from cvcourse.recipes import ch05_diffusion as ch05
from cvcourse.recipes import ch06_guided_diffusion as ch06
from cvcourse.recipes import ch07_latent_diffusion as ch07
from cvcourse.recipes.glyphs import SAMPLE_SEED, balanced_labels, quality_table, held_out_glyphs, training_glyphs
from cvcourse.recipes.judge import glyph_judge


def image_shape(cfg: Config, count: int) -> tuple[int, int, int, int]:
    return (count, 1, cfg.ddpm.image_size, cfg.ddpm.image_size)


def _held_out(cfg: Config) -> torch.Tensor:
    return held_out_glyphs(cfg.sample_count, cfg.ddpm.image_size)[0]


def ddpm_glyphs(cfg: Config) -> Outcome:
    judge = glyph_judge(cfg.ddpm.image_size, device=cfg.device)
    model, info = ch05.trained_ddpm(cfg, cfg.ddpm, rebuild=True)
    samples, sample_seconds = ch05.cached_samples(model.to(cfg.device), ch05.noise_schedule(cfg.ddpm),
                                                  image_shape(cfg, cfg.sample_count), seed=SAMPLE_SEED, rebuild=True)
    report = judge.report(samples)
    return Outcome(report["confident_share"],
                   measured={"ddpm_class_coverage": report["class_coverage"], "train_s": info["seconds"]},
                   details={**quality_table(judge, samples, _held_out(cfg)), "steps": info["steps"],
                            "sample_s": sample_seconds, "samples": cfg.sample_count})


def _timed(sample) -> float:
    started = time.perf_counter()
    sample()
    return time.perf_counter() - started


def ddim_speed(cfg: Config) -> Outcome:
    judge = glyph_judge(cfg.ddpm.image_size, device=cfg.device)
    model, _ = ch05.trained_ddpm(cfg, cfg.ddpm)
    model = model.to(cfg.device)
    schedule = ch05.noise_schedule(cfg.ddpm)
    shape = image_shape(cfg, cfg.sample_count)
    ddpm, _ = ch05.cached_samples(model, schedule, shape, seed=SAMPLE_SEED)
    ddim = {eta: ch05.cached_samples(model, schedule, shape, sampler="ddim", steps=cfg.ddim_steps, eta=eta,
                                     seed=SAMPLE_SEED, rebuild=True)[0] for eta in sorted({0.0, cfg.ddim_eta})}
    fcd_ddpm, fcd_ddim = judge.fcd(ddpm), {eta: judge.fcd(samples) for eta, samples in ddim.items()}
    # both samplers timed afresh, one after the other, on the same batch
    schedule, speed_shape = schedule.to(cfg.device), image_shape(cfg, cfg.speed_count)
    ddpm_s = _timed(lambda: ddpm_sample(model, schedule, speed_shape, generator=torch.Generator().manual_seed(0)))
    ddim_s = _timed(lambda: ddim_sample(model, schedule, speed_shape, steps=cfg.ddim_steps, eta=cfg.ddim_eta,
                                        generator=torch.Generator().manual_seed(0)))
    details = {"eta": cfg.ddim_eta, "fcd_ddpm": fcd_ddpm, "confident_share_ddpm": judge.confident_share(ddpm)}
    for eta, samples in ddim.items():
        details.update({f"fcd_ddim_eta{eta:g}": fcd_ddim[eta],
                        f"confident_share_ddim_eta{eta:g}": judge.confident_share(samples)})
    details.update({"ddpm_s": ddpm_s, "ddim_s": ddim_s, "timed_batch": cfg.speed_count, "ddim_steps": cfg.ddim_steps})
    return Outcome(ddpm_s / ddim_s, measured={"ddim_fcd_ratio": fcd_ddim[cfg.ddim_eta] / fcd_ddpm}, details=details)


def cfg_glyphs(cfg: Config) -> Outcome:
    judge = glyph_judge(cfg.ddpm.image_size, device=cfg.device)
    model, info = ch05.trained_ddpm(cfg, cfg.ddpm, conditional=True, drop_label_prob=cfg.drop_label_prob,
                                    rebuild=True)
    model, schedule = model.to(cfg.device), ch05.noise_schedule(cfg.ddpm)
    labels = balanced_labels(cfg.sample_count)
    sweep = {}
    for w in sorted({0.0, *cfg.guidance_scales, cfg.guidance_scale}):
        samples, _ = ch05.cached_samples(model, schedule, image_shape(cfg, cfg.sample_count), sampler="ddim",
                                         steps=cfg.ddim_steps, eta=cfg.ddim_eta, labels=labels, guidance_scale=w,
                                         seed=SAMPLE_SEED, rebuild=True)
        sweep[w] = judge.report(samples, labels)
    chosen, unguided = sweep[cfg.guidance_scale], sweep[0.0]
    details = {"w": cfg.guidance_scale, "label_accuracy_w0": unguided["label_accuracy"],
               "train_s": info["seconds"], "steps": info["steps"]}
    for w, report in sweep.items():
        details.update({f"w={w:g} {name}": report[name]
                        for name in ("label_accuracy", "confident_share", "class_coverage", "fcd")})
    return Outcome(chosen["label_accuracy"],
                   measured={"cfg_label_accuracy_gain": chosen["label_accuracy"] - unguided["label_accuracy"]},
                   details=details)


def autoguided_glyphs(cfg: Config) -> Outcome:
    judge = glyph_judge(cfg.ddpm.image_size, device=cfg.device)
    model, info = ch05.trained_ddpm(cfg, cfg.ddpm)
    guide, guide_info = ch05.trained_ddpm(cfg, cfg.guide, rebuild=True)
    model, guide, schedule = model.to(cfg.device), guide.to(cfg.device), ch05.noise_schedule(cfg.ddpm)
    sweep = {}
    for w in sorted({0.0, *cfg.autoguidance_scales, cfg.autoguidance_scale}):
        samples, _ = ch05.cached_samples(AutoGuided(model, guide, w) if w else model, schedule,
                                         image_shape(cfg, cfg.sample_count), sampler="ddim", steps=cfg.ddim_steps,
                                         eta=cfg.ddim_eta, seed=SAMPLE_SEED, rebuild=True)
        sweep[w] = judge.report(samples)
    chosen, alone = sweep[cfg.autoguidance_scale], sweep[0.0]
    details = {"w": cfg.autoguidance_scale, "confident_share_alone": alone["confident_share"], "fcd": chosen["fcd"],
               "fcd_alone": alone["fcd"], "guide_train_s": guide_info["seconds"], "guide_steps": guide_info["steps"],
               "guide_width": cfg.guide.width, "eta": cfg.ddim_eta}
    for w, report in sweep.items():
        details.update({f"w={w:g} {name}": report[name] for name in ("confident_share", "class_coverage", "fcd")})
    return Outcome(chosen["confident_share"],
                   measured={"autoguided_class_coverage": chosen["class_coverage"],
                             "autoguided_fcd_ratio": chosen["fcd"] / alone["fcd"],
                             "autoguidance_train_s": info["seconds"] + guide_info["seconds"]},  # model and guide
                   details=details)


def latent_glyphs(cfg: Config) -> Outcome:
    judge = glyph_judge(cfg.latent.image_size, device=cfg.device)
    model, space, info = ch07.trained_latent_ddpm(cfg, rebuild=True)
    model, schedule = model.to(cfg.device), ch05.noise_schedule(cfg.latent).to(cfg.device)
    latents = ddim_sample(model, schedule, space.latent_shape(cfg.sample_count), steps=cfg.ddim_steps,
                          eta=cfg.ddim_eta, clip_x0=False, spacing=ch07.LATENT_SPACING,
                          generator=torch.Generator().manual_seed(SAMPLE_SEED))
    samples = space.decode(latents.cpu())
    report = judge.report(samples)
    images, _ = training_glyphs(cfg.latent.train_size, cfg.latent.image_size)
    times = ch07.latent_step_times(cfg, model, space, images[:cfg.latent.batch_size].to(cfg.device))
    return Outcome(report["confident_share"], measured={"latent_step_speedup": times["speedup"]},
                   details={"class_coverage": report["class_coverage"], **quality_table(judge, samples, _held_out(cfg)),
                            "latent_step_s": times["latent"], "pixel_step_s": times["pixel"],
                            "chapter05_pixel_step_s": times["chapter05_pixel"],
                            "latent_shape": list(space.latent_shape(1)[1:]), "scale_factor": space.scale_factor,
                            "train_s": info["seconds"], "steps": info["steps"]})


ENTRIES = (
    Entry("diff.ddpm_glyphs", "DDPM confident share (1000-step ancestral sampling)", ch05, "ddpm_confident_share",
          ddpm_glyphs),
    Entry("diff.ddim_speed", "50-step DDIM (eta as set) speed-up over 1000-step DDPM sampling", ch05, "ddim_speedup",
          ddim_speed),
    Entry("diff.cfg_glyphs", "label accuracy under classifier-free guidance at the chosen w", ch06,
          "cfg_label_accuracy", cfg_glyphs),
    Entry("diff.autoguided_glyphs", "autoguided DDPM confident share (50-step DDIM, eta as set)", ch06,
          "autoguided_confident_share", autoguided_glyphs),
    Entry("diff.latent_glyphs", "latent diffusion confident share", ch07, "latent_confident_share", latent_glyphs),
)
