"""Segmentation metrics: the confusion matrix and the scores read from it, plus binary IoU and Dice.

Conventions: a class map is an integer tensor (H, W) or (B, H, W) with values in [0, num_classes);
a binary mask is a bool tensor or an integer tensor of 0s and 1s.

For one class c, with TP, FP, FN counted over all pixels:

- IoU (Jaccard index) = TP / (TP + FP + FN) = |A ∩ B| / |A ∪ B|
- Dice (F1 score)     = 2 TP / (2 TP + FP + FN) = 2 |A ∩ B| / (|A| + |B|)

``confusion_matrix`` pools the pixels of a whole dataset (the usual way to report mIoU);
``iou`` and ``dice`` score each image on its own.
"""

from __future__ import annotations

import torch

MAX_LISTED_VALUES = 10


def check_class_labels(labels: torch.Tensor, num_classes: int, name: str, ignore_index: int | None = None) -> None:
    """Raise a ValueError naming the problem and the fix unless ``labels`` is a bool or integer tensor
    with values in [0, num_classes) (``ignore_index`` allowed too)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} should be a torch.Tensor, got {type(labels).__name__}; convert with torch.as_tensor")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"{name} should hold class labels (a bool or integer tensor), got dtype {labels.dtype}; "
            "for logits (B, C, H, W) take logits.argmax(dim=1), threshold probabilities (probs > 0.5), "
            "and convert a float mask of 0. and 1. with .long()"
        )
    if labels.dtype == torch.bool:
        labels = labels.long()
    outside = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        outside &= labels != ignore_index
    if outside.any():
        seen = labels.unique().tolist()
        listed = seen[:MAX_LISTED_VALUES] + (["..."] if len(seen) > MAX_LISTED_VALUES else [])
        raise ValueError(
            f"{name} has labels outside [0, {num_classes}): values seen are {listed}; map them to "
            f"0..{num_classes - 1} first (Oxford-IIIT Pet trimaps are 1, 2, 3: use trimap - 1), "
            "pass a larger num_classes, or mark pixels to skip with ignore_index"
        )


def check_same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Raise a ValueError unless prediction and target have the same shape."""
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target should have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}; "
            "turn logits (B, C, H, W) into a class map (B, H, W) with logits.argmax(dim=1), "
            "and give both the same batch dimension"
        )


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """(K, K) int64 counts: entry [i, j] is the number of pixels of true class i predicted as class j
    (rows = true, columns = predicted, as ``sklearn.metrics.confusion_matrix``).

    ``pred`` and ``target`` are class maps of the same shape; pixels whose target is ``ignore_index``
    are left out. Counted with one ``torch.bincount`` of ``target * K + pred``. Sum the matrices of
    several batches to score a whole dataset.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes should be a positive integer, got {num_classes!r}; use 2 for binary masks")
    check_class_labels(target, num_classes, "target", ignore_index)
    check_class_labels(pred, num_classes, "pred")
    check_same_shape(pred, target)
    pred, target = pred.long().flatten(), target.long().flatten()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def check_confusion_matrix(cm: torch.Tensor) -> torch.Tensor:
    """The matrix as float, after checking that it is a square (K, K) matrix of counts."""
    if not isinstance(cm, torch.Tensor) or cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        shape = tuple(cm.shape) if isinstance(cm, torch.Tensor) else type(cm).__name__
        raise ValueError(
            f"expected a square confusion matrix (K, K), got {shape}; "
            "make one with confusion_matrix(pred, target, num_classes)"
        )
    return cm.float()


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Fraction of pixels whose class is right: trace / total (``sklearn.metrics.accuracy_score``)."""
    cm = check_confusion_matrix(cm)
    if cm.sum() == 0:
        raise ValueError("the confusion matrix counts no pixel; check that not every pixel was ignored")
    return (cm.trace() / cm.sum()).item()


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """(K,) float IoU of each class, TP / (TP + FP + FN); NaN for a class absent from both the
    prediction and the target (nothing to score), where sklearn's ``jaccard_score`` reports 0."""
    cm = check_confusion_matrix(cm)
    true_positives = cm.diagonal()
    union = cm.sum(dim=0) + cm.sum(dim=1) - true_positives  # predicted + true - both
    return true_positives / union  # 0 / 0 = NaN for an absent class


def mean_iou(cm: torch.Tensor) -> float:
    """mIoU: the mean of ``iou_per_class`` over the classes present (NaNs skipped, ``torch.nanmean``)."""
    return torch.nanmean(iou_per_class(cm)).item()


def dice_per_class(cm: torch.Tensor) -> torch.Tensor:
    """(K,) float Dice (F1 score) of each class, 2 TP / (2 TP + FP + FN); NaN for an absent class."""
    cm = check_confusion_matrix(cm)
    true_positives = cm.diagonal()
    return 2 * true_positives / (cm.sum(dim=0) + cm.sum(dim=1))


def check_binary_masks(pred_mask: torch.Tensor, true_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both masks as bool, after checking they are binary (H, W) or (B, H, W) masks of one shape."""
    check_class_labels(pred_mask, 2, "pred_mask")
    check_class_labels(true_mask, 2, "true_mask")
    check_same_shape(pred_mask, true_mask)
    if pred_mask.ndim not in (2, 3):
        raise ValueError(
            f"expected masks (H, W) or a batch (B, H, W), got shape {tuple(pred_mask.shape)}; "
            "drop a channel dimension of size 1 with mask.squeeze(1)"
        )
    return pred_mask.bool(), true_mask.bool()


def iou(pred_mask: torch.Tensor, true_mask: torch.Tensor) -> torch.Tensor:
    """IoU |A ∩ B| / |A ∪ B| of binary masks: a 0-dim float tensor for (H, W) masks, one score per image
    (B,) for a batch (B, H, W) (take ``.mean()`` for the mean over images). Two empty masks score 1.0."""
    pred_mask, true_mask = check_binary_masks(pred_mask, true_mask)
    intersection = (pred_mask & true_mask).sum(dim=(-2, -1))
    union = (pred_mask | true_mask).sum(dim=(-2, -1))
    return torch.where(union > 0, intersection / union.clamp_min(1), 1.0)


def dice(pred_mask: torch.Tensor, true_mask: torch.Tensor) -> torch.Tensor:
    """Dice 2 |A ∩ B| / (|A| + |B|) of binary masks, per image like ``iou``. Two empty masks score 1.0.

    Dice = 2 IoU / (1 + IoU), so it is never below the IoU and ranks predictions the same way.
    """
    pred_mask, true_mask = check_binary_masks(pred_mask, true_mask)
    intersection = (pred_mask & true_mask).sum(dim=(-2, -1))
    total = pred_mask.sum(dim=(-2, -1)) + true_mask.sum(dim=(-2, -1))
    return torch.where(total > 0, 2 * intersection / total.clamp_min(1), 1.0)

