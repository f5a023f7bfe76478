"""Chapters 13 and 14: diffusion applied to detection.

- ``det.denoise_then_detect``: chapter 08's detector on test scenes with Gaussian noise and in low light, restored
  by a tuned Gaussian filter, a direct denoiser or diffusion purification, or fine-tuned on degraded images; the
  value is the share of the gap between no restoration and clean images that the best method recovers at the
  strongest noise (mAP@0.5);
- ``det.diffusiondet_shapes``: the box denoiser (DiffusionDet) on chapter 08's backbone, mAP@0.5 with
  ``cfg.boxes.boxes`` boxes and ``cfg.boxes.sample_steps`` steps; also mAP@[.5:.95], the training seconds and the
  mAP@[.5:.95] lost from 1 step to that many.

Both read the chapters' cached models and tables, so the bench and the notebooks report the same run.
"""

from __future__ import annotations

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.recipes import ch13_denoise_then_detect as ch13
from cvcourse.recipes import ch14_boxes_from_noise as ch14


def denoise_then_detect(cfg: Config) -> Outcome:
    rows = ch13.restoration_table(cfg, progress=False)
    summary = ch13.restoration_summary(cfg, rows)
    degraded = [row for row in rows if row["kind"] != "clean"]
    seconds = {method: sum(row["seconds_per_image"] for row in degraded if row["method"] == method)
               / len(ch13.degradations(cfg)) for method in cfg.restoration.methods}  # the mean over degradations
    return Outcome(summary["recovered"][summary["best"]],
                   checks={"noise_costs_the_detector": summary["map_50"]["none"] < summary["ceiling"]},
                   details={"noise_std": summary["strongest"], "clean_map_50": summary["ceiling"],
                            **{f"{method} map_50": value for method, value in summary["map_50"].items()},
                            **{f"{method} recovered": share for method, share in summary["recovered"].items()},
                            "ranking": " > ".join(summary["ranking"]),
                            **{f"{method} ms_per_image": 1000 * value for method, value in seconds.items()}})


def diffusiondet_shapes(cfg: Config) -> Outcome:
    table = ch14.boxes_and_steps_table(cfg, progress=False)
    summary = ch14.boxes_summary(cfg, table)
    _, info = ch14.trained_box_denoiser(cfg, progress=False)
    ablations = ch14.ablation_table(cfg, progress=False)
    main = summary["main"]
    return Outcome(main["map_50"], measured={"diffusiondet_map": main["map"], "diffusiondet_train_s": info["seconds"],
                                             "map_lost_with_more_steps": summary["lost"]},
                   details={"boxes": cfg.boxes.boxes, "steps": cfg.boxes.sample_steps,
                            **{f"{row['boxes']} boxes {row['steps']} steps map": row["map"] for row in table},
                            **{f"{row['sampler']} map": row["map"] for row in ablations},
                            "ddim map spread over 3 seeds": max(ablations[0]["seed_maps"])
                            - min(ablations[0]["seed_maps"])})


ENTRIES = (
    Entry("det.denoise_then_detect", "share of the noisy-to-clean mAP@0.5 gap the best method recovers", ch13,
          "best_recovered_share", denoise_then_detect),
    Entry("det.diffusiondet_shapes", "box denoiser mAP@0.5 on held-out shape scenes", ch14, "diffusiondet_map_50",
          diffusiondet_shapes),
)
