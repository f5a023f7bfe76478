"""The segmentation chapters' headline experiments, through chapter 02's recipe (so notebook and bench agree).

- ``seg.otsu_cells``: global Otsu thresholding on the held-out synthetic cells (the baseline);
- ``seg.unet_cells``: a binary U-Net (sigmoid, BCE + Dice) on the same images;
- ``seg.unet_scenes``: a multiclass U-Net (softmax, cross-entropy + Dice) on synthetic street scenes.
"""

from __future__ import annotations

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.data import StreetScenes
from cvcourse.recipes import ch02_unet as recipe
from cvcourse.segmentation import bce_dice_loss, ce_dice_loss, metrics, otsu_masks, segment


def otsu_cells(cfg: Config) -> Outcome:
    images, masks = recipe.cell_split(cfg, "test")
    return Outcome(metrics.dice(otsu_masks(images), masks).mean().item(), details={"images": len(images)})


def unet_cells(cfg: Config) -> Outcome:
    train_images, train_masks = recipe.cell_split(cfg, "train")
    test_images, test_masks = recipe.cell_split(cfg, "test")
    model, seconds = recipe.train_unet(cfg, recipe.cells_unet(cfg), train_images, train_masks, bce_dice_loss,
                                       cfg.cells_steps, progress=False)
    unet_dice = metrics.dice(segment(model, test_images), test_masks).mean().item()
    otsu_dice = metrics.dice(otsu_masks(test_images), test_masks).mean().item()
    return Outcome(unet_dice, measured={"cells_train_s": seconds, "cells_margin_over_otsu": unet_dice - otsu_dice},
                   details={"otsu_dice": otsu_dice, "steps": cfg.cells_steps, "parameters": model.num_parameters})


def unet_scenes(cfg: Config) -> Outcome:
    train_images, train_maps = recipe.scene_split(cfg, "train")
    test_images, test_maps = recipe.scene_split(cfg, "test")
    model, seconds = recipe.train_unet(cfg, recipe.scenes_unet(cfg), train_images, train_maps, ce_dice_loss,
                                       cfg.scenes_steps, progress=False)
    confusion = metrics.confusion_matrix(segment(model, test_images), test_maps, StreetScenes.num_classes)
    per_class = metrics.iou_per_class(confusion)
    return Outcome(metrics.mean_iou(confusion), measured={"scenes_train_s": seconds},
                   checks={"classes>=5": StreetScenes.num_classes >= 5},
                   details={"steps": cfg.scenes_steps, "parameters": model.num_parameters,
                            **{f"iou_{name}": float(value)
                               for name, value in zip(StreetScenes.class_names, per_class)}})


ENTRIES = (
    Entry("seg.otsu_cells", "Otsu Dice on held-out cells", recipe, None, otsu_cells),
    Entry("seg.unet_cells", "U-Net Dice on held-out cells", recipe, "cells_dice", unet_cells),
    Entry("seg.unet_scenes", "U-Net mIoU on held-out street scenes", recipe, "scenes_miou", unet_scenes),
)
