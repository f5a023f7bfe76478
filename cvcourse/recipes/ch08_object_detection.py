"""Chapter 08, object detection: the settings and targets, the scenes' splits, the detector and its training.

``cfg.dataset`` names the scenes: ``"shapes"``, the synthetic shape scenes (every profile of this chapter), or
``"penn_fudan"``, Penn-Fudan pedestrians resized to ``image_size`` (chapters 13 and 14 in the gpu profile; the
detector then learns one class). ``cfg.reference`` sizes the random detection problems on which the bench compares
the course's COCO evaluation with pycocotools'.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config
from cvcourse.data import PennFudanScenes, detection_scenes
from cvcourse.data.synthetic import SHAPE_CLASSES
from cvcourse.detection import evaluate_detections
from cvcourse.detection.training import detect, plain_target, train_detector
from cvcourse.history import History
from cvcourse.cache import cached_model
from cvcourse.models.detector import DenseDetector
from cvcourse.recipes.training import require_finished, training_info
from cvcourse.seeding import seed_everything

CHAPTER = "08_object_detection"
DETECTOR_FIELDS = ("dataset", "image_size", "train_size", "width", "fpn_width", "steps", "batch_size", "lr")
CLASS_NAMES = {"shapes": ("background", *SHAPE_CLASSES), "penn_fudan": PennFudanScenes.class_names}


@dataclass(frozen=True)
class ReferenceCheck:
    """Random detection problems: ``cases`` of up to ``max_images`` images with up to ``max_objects`` objects."""

    cases: int = 200
    max_images: int = 6
    max_objects: int = 20


@dataclass(frozen=True)
class Settings(config.Settings):
    dataset: str = "shapes"  # or "penn_fudan" (CLASS_NAMES)
    image_size: int = 128
    train_size: int = 2000
    test_size: int = 200
    width: int = 16
    fpn_width: int = 64
    steps: int = 1000
    batch_size: int = 16
    lr: float = 3e-3
    frcnn_steps: int = 30
    reference: ReferenceCheck = ReferenceCheck()
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "map_50": ">= 0.90", "map": ">= 0.60", "train_s": "<= 600", "map_difference_to_pycocotools": "<= 0.001"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(train_size=128, test_size=16, width=8, fpn_width=16, steps=150, batch_size=8, frcnn_steps=2,
                  reference=dict(cases=50, max_images=4, max_objects=12),
                  targets={"map_50": ">= 0.10", "map": ">= 0.03", "map_difference_to_pycocotools": "<= 0.001"}),
    "gpu": dict(train_size=8000, test_size=500, width=32, fpn_width=128, steps=6000, batch_size=32, lr=2e-3,
                frcnn_steps=2000, reference=dict(cases=500, max_images=8, max_objects=30),
                targets={"map_50": ">= 0.95", "map": ">= 0.70", "map_difference_to_pycocotools": "<= 0.001"}),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 08's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)


def settings_for(cfg: config.Config) -> config.Config:
    """Chapter 08's settings in ``cfg``'s profile, on its device, with its ``dataset``: the scenes and the detector
    that chapters 13 and 14 build on."""
    cfg08 = load(cfg.profile, cfg.device)
    return dataclasses.replace(cfg08, settings=dataclasses.replace(cfg08.settings, dataset=cfg.dataset))


def _require_known(dataset: str) -> None:
    if dataset not in CLASS_NAMES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(CLASS_NAMES)}.")


def class_names(cfg: config.Config) -> tuple[str, ...]:
    """The class names of ``cfg.dataset``'s labels, background first."""
    _require_known(cfg.dataset)
    return CLASS_NAMES[cfg.dataset]


def scenes(dataset: str, split: str, count: int, image_size: int):
    """The first ``count`` scenes of ``split`` ("train", "val" or "test") of ``dataset``, ``image_size`` square:
    ``count`` drawn shape scenes, or at most ``count`` Penn-Fudan photos (downloaded when they are not there)."""
    _require_known(dataset)
    if dataset == "penn_fudan":
        return PennFudanScenes(split, image_size, count, download=True)
    return detection_scenes(split, count, image_size)


def scene_split(cfg: config.Config, split: str):
    """The train or test scenes of the chapter (images and targets as tv_tensors; ``class_names``)."""
    return scenes(cfg.dataset, split, cfg.train_size if split == "train" else cfg.test_size, cfg.image_size)


def build_detector(cfg: config.Config, seed: int = 0) -> DenseDetector:
    """The chapter's detector for ``cfg.dataset``'s classes, initialised from ``seed``."""
    seed_everything(seed)
    return DenseDetector(num_classes=len(class_names(cfg)) - 1, width=cfg.width, fpn_width=cfg.fpn_width)


def train_and_evaluate(cfg: config.Config) -> dict[str, Any]:
    """The chapter's detector trained on the train scenes; COCO metrics on the test scenes and the seconds."""
    train, test = scene_split(cfg, "train"), scene_split(cfg, "test")
    started = time.perf_counter()
    trainer = train_detector(build_detector(cfg), train, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                             device=cfg.device, progress=False)
    seconds = time.perf_counter() - started
    images = torch.stack([test[i][0].as_subclass(torch.Tensor) for i in range(len(test))])
    scores = evaluate_detections(detect(trainer.model, images), [plain_target(test[i][1]) for i in range(len(test))])
    return {**scores, "train_s": seconds, "test_images": len(test)}


def detector_key(cfg: config.Config) -> dict[str, Any]:
    """What the trained detector depends on: the cache key of ``trained_detector``, and part of the keys of what is
    built on it."""
    return {name: getattr(cfg, name) for name in DETECTOR_FIELDS}


def trained_detector(cfg: config.Config, *, progress: bool = True) -> tuple[DenseDetector, dict[str, Any]]:
    """The chapter's detector trained on the train scenes, cached (resumable), and its info (``seconds``,
    ``history``): chapter 13 detects in restored images with it, chapter 14 starts its box denoiser from its
    backbone."""
    def train(model: DenseDetector, checkpoint_dir) -> dict[str, Any]:
        trainer = train_detector(model, scene_split(cfg, "train"), steps=cfg.steps, batch_size=cfg.batch_size,
                                 lr=cfg.lr, device=cfg.device, checkpoint_dir=checkpoint_dir,
                                 checkpoint_every=max(cfg.steps // 3, 1), resume=True, progress=progress)
        require_finished(trainer, cfg.steps)
        return training_info(trainer)

    model, info = cached_model(f"{cfg.dataset}-detector", detector_key(cfg), lambda: build_detector(cfg), train)
    history = History()
    history.load_state_dict(info["history"])
    return model.to(cfg.device).eval(), {**info, "history": history}
