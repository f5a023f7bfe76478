"""Segmentation: Otsu thresholding and connected objects, metrics, losses, the U-Net paper's weight map, training."""

from cvcourse.segmentation.losses import (
    bce_dice_loss,
    ce_dice_loss,
    dice_loss,
    weighted_bce,
)
from cvcourse.segmentation.threshold import (
    between_class_variance,
    count_objects,
    label_objects,
    otsu_masks,
    otsu_threshold,
    threshold,
)
from cvcourse.segmentation.training import segment, segmentation_step, train_segmentation
from cvcourse.segmentation.weight_map import class_balance_weights, unet_weight_map

__all__ = [
    "bce_dice_loss",
    "between_class_variance",
    "ce_dice_loss",
    "class_balance_weights",
    "count_objects",
    "dice_loss",
    "label_objects",
    "otsu_masks",
    "otsu_threshold",
    "segment",
    "segmentation_step",
    "threshold",
    "train_segmentation",
    "unet_weight_map",
    "weighted_bce",
]
