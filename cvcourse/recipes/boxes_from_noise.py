"""Chapter 14: boxes denoised from noise (DiffusionDet, Chen et al. 2023) on chapter 08's scenes (``cfg.dataset``).

The box denoiser (:class:`cvcourse.models.BoxDenoiser`) starts from chapter 08's trained backbone, as DiffusionDet
starts from a pretrained one, and is trained with the set loss on boxes noised at random timesteps
(:mod:`cvcourse.detection.box_denoising`). One trained model is then sampled with several numbers of boxes and steps,
with the sampler's ablations (fresh boxes every pass, a fixed timestep, no renewal), and compared with the same head
trained from learned proposals (Sparse R-CNN) on the same budget, and with chapter 08's dense detector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cvcourse import config
from cvcourse.cache import cached, cached_model
from cvcourse.config import settings_key
from cvcourse.data import coco_area_ranges
from cvcourse.detection import evaluate_detections
from cvcourse.detection.box_denoising import sample_boxes, train_box_denoiser
from cvcourse.detection.training import Target, detect, plain_target
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.history import History
from cvcourse.models import BoxDenoiser
from cvcourse.recipes import ch08_object_detection as ch08
from cvcourse.recipes.training import require_finished, training_info
from cvcourse.seeding import seed_everything

TRAINING_FIELDS = ("frozen_backbone", "hidden", "stages", "roi_size", "train_boxes", "steps", "batch_size", "lr",
                   "seed")


@dataclass(frozen=True)
class BoxDiffusionRecipe:
    """The box denoiser of part 2 and how it is trained and sampled: ``train_boxes`` boxes per image in training,
    each combination of ``eval_boxes`` and ``eval_steps`` at test time on the first ``test_size`` of chapter 08's test
    scenes, the ablations at ``boxes`` and ``sample_steps``."""

    frozen_backbone: bool = True
    hidden: int = 128
    stages: int = 2
    roi_size: int = 7
    train_boxes: int = 48
    steps: int = 500
    batch_size: int = 16
    lr: float = 1e-3
    renewal_threshold: float = 0.5
    eval_boxes: tuple[int, ...] = (8, 32, 100)
    eval_steps: tuple[int, ...] = (1, 2, 4)
    boxes: int = 100
    sample_steps: int = 4
    test_size: int = 100
    seed: int = 0


def schedule() -> NoiseSchedule:
    """DiffusionDet's cosine schedule with T = 1000 (Nichol and Dhariwal 2021)."""
    return NoiseSchedule.cosine(1000)


def test_scenes(cfg: config.Config) -> tuple[torch.Tensor, list[Target]]:
    """The first ``cfg.boxes.test_size`` of chapter 08's test images (N, 3, H, W) in [0, 1] and their targets."""
    return _stacked(ch08.scene_split(ch08.settings_for(cfg), "test"), cfg.boxes.test_size)


def train_batch(cfg: config.Config, count: int) -> tuple[torch.Tensor, list[Target]]:
    """The first ``count`` of chapter 08's training images and their targets."""
    return _stacked(ch08.scene_split(ch08.settings_for(cfg), "train"), count)


def _stacked(scenes, count: int | None = None) -> tuple[torch.Tensor, list[Target]]:
    indices = range(len(scenes) if count is None else min(count, len(scenes)))
    return (torch.stack([scenes[i][0].as_subclass(torch.Tensor) for i in indices]),
            [plain_target(scenes[i][1]) for i in indices])


def build_box_denoiser(cfg: config.Config, *, learned_proposals: bool = False) -> BoxDenoiser:
    """The recipe's box denoiser with chapter 08's trained backbone, frozen or not (new random start boxes with
    ``learned_proposals``: ``cfg.boxes.boxes`` of them, the number DiffusionDet's sampler uses)."""
    detector_cfg, recipe = ch08.settings_for(cfg), cfg.boxes
    seed_everything(recipe.seed)
    model = BoxDenoiser(len(ch08.class_names(cfg)) - 1, width=detector_cfg.width, fpn_width=detector_cfg.fpn_width,
                        hidden=recipe.hidden, stages=recipe.stages, roi_size=recipe.roi_size,
                        frozen_backbone=recipe.frozen_backbone,
                        learned_proposals=recipe.boxes if learned_proposals else None)
    detector, _ = ch08.trained_detector(detector_cfg)
    backbone = model.backbone.state_dict()
    model.backbone.load_state_dict({name: detector.state_dict()[name] for name in backbone})
    return model


def trained_box_denoiser(cfg: config.Config, *, learned_proposals: bool = False,
                         progress: bool = True) -> tuple[BoxDenoiser, dict[str, Any]]:
    """The box denoiser trained on chapter 08's train scenes (cached, resumable), and its info (``seconds``,
    ``history``); ``learned_proposals=True``: the same head from learned start boxes, on the same budget."""
    detector_cfg, recipe = ch08.settings_for(cfg), cfg.boxes

    def train(model: BoxDenoiser, checkpoint_dir: Path) -> dict[str, Any]:
        trainer = train_box_denoiser(model, ch08.scene_split(detector_cfg, "train"), schedule(),
                                     count=recipe.train_boxes, steps=recipe.steps, batch_size=recipe.batch_size,
                                     lr=recipe.lr, device=cfg.device, seed=recipe.seed, checkpoint_dir=checkpoint_dir,
                                     checkpoint_every=max(recipe.steps // 4, 1), resume=True, progress=progress)
        require_finished(trainer, recipe.steps)
        return training_info(trainer)

    key = {**{name: getattr(recipe, name) for name in TRAINING_FIELDS}, "detector": ch08.detector_key(detector_cfg),
           "learned_proposals": recipe.boxes if learned_proposals else None}
    model, info = cached_model(f"{cfg.dataset}-box-denoiser", key,
                               lambda: build_box_denoiser(cfg, learned_proposals=learned_proposals), train)
    history = History()
    history.load_state_dict(info["history"])
    return model.to(cfg.device).eval(), {**info, "history": history}


def evaluate(cfg: config.Config, model: BoxDenoiser, images: torch.Tensor, targets: list[Target], *, count: int,
             steps: int, mode: str = "ddim", renewal: bool = True, seed: int | None = None,
             batch_size: int = 50) -> dict[str, float]:
    """COCO mAP@0.5, mAP@[.5:.95] and AP by size of ``model`` sampled with ``count`` boxes and ``steps`` steps, and
    its milliseconds per image; the random boxes are seeded (``seed``, default ``cfg.boxes.seed``), so a figure is
    reproducible."""
    generator = torch.Generator().manual_seed(cfg.boxes.seed if seed is None else seed)
    threshold = cfg.boxes.renewal_threshold if renewal else None
    detections, started = [], time.perf_counter()
    for start in range(0, len(images), batch_size):
        detections += sample_boxes(model, schedule(), images[start:start + batch_size].to(cfg.device), count=count,
                                   steps=steps, mode=mode, renewal_threshold=threshold, generator=generator)
    milliseconds = 1000 * (time.perf_counter() - started) / len(images)
    return {**_scores(cfg, detections, targets, images.shape[-1]), "ms_per_image": milliseconds}


def _scores(cfg: config.Config, detections: list[Target], targets: list[Target], image_size: int) -> dict[str, float]:
    scores = evaluate_detections(detections, targets, num_classes=len(ch08.class_names(cfg)),
                                 size_ranges=coco_area_ranges(image_size))
    return {name: float(scores[name]) for name in ("map_50", "map", "map_small", "map_medium", "map_large")}


def boxes_and_steps_table(cfg: config.Config, *, progress: bool = True) -> list[dict[str, float]]:
    """One row per number of boxes and of steps (``eval_boxes`` and ``boxes``; ``eval_steps``, 1 and ``sample_steps``),
    all from the one trained model (cached)."""
    def make() -> dict[str, Any]:
        model, _ = trained_box_denoiser(cfg, progress=progress)
        images, targets = test_scenes(cfg)
        counts = sorted({*cfg.boxes.eval_boxes, cfg.boxes.boxes})
        step_counts = sorted({1, *cfg.boxes.eval_steps, cfg.boxes.sample_steps})  # what the summary compares, too
        return {"rows": [{"boxes": count, "steps": steps, **evaluate(cfg, model, images, targets, count=count,
                                                                     steps=steps)}
                         for count in counts for steps in step_counts]}

    return cached(f"{cfg.dataset}-box-denoiser-sampling", _key(cfg), make)["rows"]


def ablation_table(cfg: config.Config, *, progress: bool = True) -> list[dict[str, Any]]:
    """What the steps buy, at ``cfg.boxes.boxes`` boxes and ``cfg.boxes.sample_steps`` passes: proper DDIM steps,
    fresh random boxes every pass, a fixed timestep, no renewal; and learned proposals (one pass), cached. The DDIM row
    also holds ``seed_maps``, its mAP@[.5:.95] with three seeds of the random boxes: how far a figure moves by
    chance."""
    def make() -> dict[str, Any]:
        model, _ = trained_box_denoiser(cfg, progress=progress)
        learned, _ = trained_box_denoiser(cfg, learned_proposals=True, progress=progress)
        images, targets = test_scenes(cfg)
        options = {"count": cfg.boxes.boxes, "steps": cfg.boxes.sample_steps}
        variants = {"DDIM steps": {}, "fresh boxes every pass": {"mode": "fresh"},
                    "fixed timestep": {"mode": "fixed_t"}, "no box renewal": {"renewal": False}}
        rows = [{"sampler": name, **evaluate(cfg, model, images, targets, **options, **variant)}
                for name, variant in variants.items()]
        rows[0]["seed_maps"] = [rows[0]["map"]] + [evaluate(cfg, model, images, targets, **options, seed=seed)["map"]
                                                   for seed in (cfg.boxes.seed + 1, cfg.boxes.seed + 2)]
        rows.append({"sampler": "learned proposals (Sparse R-CNN)", **evaluate(cfg, learned, images, targets,
                                                                              **options)})
        return {"rows": rows}

    return cached(f"{cfg.dataset}-box-denoiser-ablations", _key(cfg), make)["rows"]


def dense_comparison(cfg: config.Config, *, progress: bool = True) -> dict[str, dict[str, float]]:
    """Chapter 08's dense detector and the box denoiser (``cfg.boxes.boxes`` boxes, ``sample_steps`` steps) on the
    same test scenes: accuracy, AP by size, parameters, training seconds and milliseconds per image (cached)."""
    def make() -> dict[str, Any]:
        detector, detector_info = ch08.trained_detector(ch08.settings_for(cfg), progress=progress)
        model, info = trained_box_denoiser(cfg, progress=progress)
        images, targets = test_scenes(cfg)
        started = time.perf_counter()
        found = detect(detector, images)
        dense = {**_scores(cfg, found, targets, images.shape[-1]),
                 "ms_per_image": 1000 * (time.perf_counter() - started) / len(images)}
        boxes = evaluate(cfg, model, images, targets, count=cfg.boxes.boxes, steps=cfg.boxes.sample_steps)
        return {"dense detector (FCOS)": {**dense, "parameters": _parameters(detector),
                                          "train_s": detector_info["seconds"]},
                "box denoiser (DiffusionDet)": {**boxes, "parameters": _parameters(model), "train_s": info["seconds"],
                                                "backbone_train_s": detector_info["seconds"]}}

    return cached(f"{cfg.dataset}-box-denoiser-vs-dense", _key(cfg), make)


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _key(cfg: config.Config) -> dict[str, Any]:
    return {**settings_key(cfg.boxes), "detector": ch08.detector_key(ch08.settings_for(cfg))}
