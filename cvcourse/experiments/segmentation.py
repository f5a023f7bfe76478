"""The segmentation chapters' headline experiments (chapter 02's settings, so notebook and bench agree).

- ``seg.otsu_cells``: global Otsu thresholding on the held-out synthetic cells (the baseline);
- ``seg.unet_cells``: a binary U-Net (sigmoid, BCE + Dice) on the same images;
- ``seg.unet_scenes``: a multiclass U-Net (softmax, cross-entropy + Dice) on synthetic street scenes.
"""

from __future__ import annotations

import time

import torch

from cvcourse import metrics
from cvcourse.bench import Outcome, register
from cvcourse.config import Config
from cvcourse.data import StreetScenes, SyntheticCells, materialize
from cvcourse.device import seed_everything
from cvcourse.models import UNet
from cvcourse.segmentation import bce_dice_loss, ce_dice_loss, otsu_threshold, segment, train_segmentation


def cell_split(cfg: Config, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) and masks (N, H, W) of the train (seed 0) or test (seed 1) cells."""
    size, seed = (cfg.cells_train, 0) if split == "train" else (cfg.cells_test, 1)
    return materialize(SyntheticCells(size, cfg.cells_image_size, seed=seed), target_key="mask")


def scene_split(cfg: Config, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, H, W) and class maps (N, H, W) of the train (seed 0) or test (seed 1) street scenes."""
    size, seed = (cfg.scenes_train, 0) if split == "train" else (cfg.scenes_test, 1)
    return materialize(StreetScenes(size, tuple(cfg.scenes_image_size), seed=seed))


def otsu_masks(images: torch.Tensor) -> torch.Tensor:
    """Each grayscale image thresholded at its own Otsu threshold: (N, 1, H, W) -> (N, H, W)."""
    return torch.stack([(image[0] > otsu_threshold(image[0])).long() for image in images])


def cells_unet(cfg: Config, seed: int = 0) -> UNet:
    """The binary U-Net of chapter 02, initialised from ``seed``."""
    seed_everything(seed)
    return UNet(1, 1, depth=cfg.cells_depth, base_width=cfg.cells_width)


def scenes_unet(cfg: Config, seed: int = 0) -> UNet:
    """The multiclass U-Net of chapter 02, initialised from ``seed``."""
    seed_everything(seed)
    return UNet(3, StreetScenes.num_classes, depth=cfg.scenes_depth, base_width=cfg.scenes_width)


def timed_training(cfg: Config, model: UNet, images: torch.Tensor, targets: torch.Tensor, loss_fn, steps: int):
    """Train with chapter 02's batch size and learning rate; returns the trained model and the seconds it took."""
    started = time.perf_counter()
    trainer = train_segmentation(model, images, targets, loss_fn=loss_fn, steps=steps, batch_size=cfg.batch_size,
                                 lr=cfg.lr, device=cfg.device, progress=False)
    return trainer.model, time.perf_counter() - started


@register("seg.otsu_cells", metric="Otsu Dice on held-out cells", target=None, settings="02_unet")
def otsu_cells(cfg: Config) -> Outcome:
    images, masks = cell_split(cfg, "test")
    return Outcome(metrics.dice(otsu_masks(images), masks).mean().item(), details={"images": len(images)})


@register("seg.unet_cells", metric="U-Net Dice on held-out cells", target=">= 0.95", settings="02_unet")
def unet_cells(cfg: Config) -> Outcome:
    train_images, train_masks = cell_split(cfg, "train")
    test_images, test_masks = cell_split(cfg, "test")
    model, seconds = timed_training(cfg, cells_unet(cfg), train_images, train_masks, bce_dice_loss, cfg.cells_steps)
    unet_dice = metrics.dice(segment(model, test_images), test_masks).mean().item()
    otsu_dice = metrics.dice(otsu_masks(test_images), test_masks).mean().item()
    return Outcome(unet_dice,
                   checks={"train_s<=180": seconds <= 180, "margin_over_otsu>=0.15": unet_dice - otsu_dice >= 0.15},
                   details={"train_s": seconds, "otsu_dice": otsu_dice, "steps": cfg.cells_steps,
                            "parameters": model.num_parameters})


@register("seg.unet_scenes", metric="U-Net mIoU on held-out street scenes", target=">= 0.85", settings="02_unet")
def unet_scenes(cfg: Config) -> Outcome:
    train_images, train_maps = scene_split(cfg, "train")
    test_images, test_maps = scene_split(cfg, "test")
    model, seconds = timed_training(cfg, scenes_unet(cfg), train_images, train_maps, ce_dice_loss, cfg.scenes_steps)
    confusion = metrics.confusion_matrix(segment(model, test_images), test_maps, StreetScenes.num_classes)
    per_class = metrics.iou_per_class(confusion)
    return Outcome(metrics.mean_iou(confusion),
                   checks={"train_s<=300": seconds <= 300, "classes>=5": StreetScenes.num_classes >= 5},
                   details={"train_s": seconds, "steps": cfg.scenes_steps, "parameters": model.num_parameters,
                            **{f"iou_{name}": float(value) for name, value in zip(StreetScenes.class_names, per_class)}})
