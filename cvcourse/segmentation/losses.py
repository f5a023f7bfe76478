"""Segmentation losses: soft Dice, its sums with cross-entropy, and pixel-weighted BCE.

Logits are (B, C, H, W). One channel (C = 1) means a binary problem with a sigmoid and a target mask
(B, H, W) of 0s and 1s; C >= 2 channels mean C classes with a softmax and a target class map
(B, H, W) with values in [0, C).

Soft Dice (Milletari et al. 2016, V-Net) replaces the counts of the Dice score by probabilities, so it
can be differentiated: for each class c, summed over all pixels of the batch,

    Dice_c = (2 sum p_c t_c + eps) / (sum p_c + sum t_c + eps),     loss = 1 - mean_c Dice_c

The smoothing ``eps`` keeps a class that is absent from target and prediction at Dice ~1 instead of 0 / 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cvcourse.segmentation.metrics import check_class_labels


def check_logits_and_target(logits: torch.Tensor, target: torch.Tensor) -> None:
    """Raise a ValueError naming the problem and the fix unless logits (B, C, H, W) and target (B, H, W) match."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or not logits.is_floating_point():
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"expected float logits (B, C, H, W), got {shape}; pass the model's raw output "
            "(for one image add the batch dimension with logits[None])"
        )
    if isinstance(target, torch.Tensor) and target.ndim == 4 and target.shape[1] == 1:
        raise ValueError(
            f"expected a target (B, H, W) without a channel dimension, got shape {tuple(target.shape)}; "
            "pass target[:, 0]"
        )
    num_classes = max(logits.shape[1], 2)  # one channel: the binary labels 0 and 1
    check_class_labels(target, num_classes, "target")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"logits {tuple(logits.shape)} need a target of shape {expected}, got {tuple(target.shape)}; "
            "resize the target with the image (nearest interpolation) or crop the logits to the target's size"
        )


def probabilities_and_one_hot(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities and the one-hot target, both (B, K, H, W): sigmoid for one channel, else softmax."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits), target[:, None].to(logits.dtype)
    one_hot = F.one_hot(target.long(), num_classes=logits.shape[1]).permute(0, 3, 1, 2)
    return logits.softmax(dim=1), one_hot.to(logits.dtype)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss, 1 - mean over classes of the soft Dice (module docstring), in [0, 1].

    One channel: sigmoid, the foreground class only. C channels: softmax and ``F.one_hot``, all C
    classes (background included). Sums run over the whole batch, not image by image.
    """
    check_logits_and_target(logits, target)
    probs, one_hot = probabilities_and_one_hot(logits, target)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dim=dims)
    total = probs.sum(dim=dims) + one_hot.sum(dim=dims)
    return 1 - ((2 * intersection + eps) / (total + eps)).mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (``F.binary_cross_entropy_with_logits``) plus soft Dice, for logits (B, 1, H, W).

    BCE gives every pixel a useful gradient; Dice scores the overlap and does not drown a small
    foreground in a sea of easy background pixels.
    """
    if isinstance(logits, torch.Tensor) and logits.ndim == 4 and logits.shape[1] != 1:
        raise ValueError(
            f"bce_dice_loss is for binary logits (B, 1, H, W), got {logits.shape[1]} channels; "
            "use ce_dice_loss for several classes"
        )
    dice = dice_loss(logits, target)  # checks the inputs first
    return F.binary_cross_entropy_with_logits(logits[:, 0], target.to(logits.dtype)) + dice


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (``F.cross_entropy``) plus soft Dice over all classes, for logits (B, C, H, W), C >= 2."""
    if isinstance(logits, torch.Tensor) and logits.ndim == 4 and logits.shape[1] < 2:
        raise ValueError(
            "ce_dice_loss needs one logit channel per class (C >= 2), got 1 channel; "
            "use bce_dice_loss for binary logits (B, 1, H, W)"
        )
    dice = dice_loss(logits, target)  # checks the inputs first
    return F.cross_entropy(logits, target.long()) + dice


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy where pixel x counts w(x) times, for logits (B, 1, H, W) and a weight map
    (B, H, W), e.g. ``unet_weight_map`` (Ronneberger et al. 2015, eq. 1). Returns the mean over pixels
    of w(x) * BCE(x) (``F.binary_cross_entropy_with_logits`` with ``weight``)."""
    check_logits_and_target(logits, target)
    if logits.shape[1] != 1:
        raise ValueError(
            f"weighted_bce is for binary logits (B, 1, H, W), got {logits.shape[1]} channels; "
            "for several classes pass the weights to F.cross_entropy(..., reduction='none') and average"
        )
    if not isinstance(weight_map, torch.Tensor) or weight_map.shape != target.shape:
        shape = tuple(weight_map.shape) if isinstance(weight_map, torch.Tensor) else type(weight_map).__name__
        raise ValueError(
            f"weight_map should have the target's shape {tuple(target.shape)}, got {shape}; "
            "stack one (H, W) map per image with torch.stack"
        )
    if not weight_map.is_floating_point() or (weight_map < 0).any():
        raise ValueError(
            f"weight_map should hold non-negative float weights, got dtype {weight_map.dtype}"
            f" with minimum {weight_map.min().item()}; compute it with unet_weight_map(instances)"
        )
    return F.binary_cross_entropy_with_logits(logits[:, 0], target.to(logits.dtype), weight=weight_map)
