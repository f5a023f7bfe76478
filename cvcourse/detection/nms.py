"""Non-maximum suppression (NMS), written from scratch and tested against ``torchvision.ops.nms``.

A detector fires many overlapping boxes around each object. Greedy NMS keeps the best one and drops its
near-duplicates: take the highest-scoring box, suppress every remaining box whose IoU with it is above
the threshold, repeat with the best box left. Greedy NMS dates back to the HOG / deformable-part-model
detectors (Dalal & Triggs 2005, Felzenszwalb et al. 2010) and is the post-processing of the R-CNN line
(Girshick et al. 2014, Ren et al. 2015) and of YOLO and SSD.
"""

from __future__ import annotations

import torch
from torchvision import ops

from cvcourse.detection.boxes import check_box_labels, check_boxes


def check_scores(scores: torch.Tensor, boxes: torch.Tensor, name: str = "scores") -> None:
    """Raise a ValueError unless ``scores`` is a float tensor (N,), one score per box."""
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point() or scores.shape != boxes.shape[:1]:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"{name} should be a float tensor ({boxes.shape[0]},), one per box, got {shape}; "
                         "for class probabilities (N, K) take the score of the predicted class, probs.max(dim=1)")


def check_iou_threshold(iou_threshold: float) -> None:
    """Raise a ValueError unless ``iou_threshold`` is a number in [0, 1]."""
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold should be a number in [0, 1], got {iou_threshold!r}; "
                         "0.5 is the usual choice (lower suppresses more)")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the boxes greedy NMS keeps, by decreasing score (as ``torchvision.ops.nms``).

    A box is suppressed when its IoU with a kept, higher-scoring box is *above* ``iou_threshold``
    (an IoU equal to the threshold is kept, and so is one that is undefined: two zero-area boxes have 0 / 0).
    Boxes are xyxy (N, 4); no boxes give an empty result.
    """
    check_boxes(boxes)
    check_scores(scores, boxes)
    check_iou_threshold(iou_threshold)
    remaining = scores.argsort(descending=True)  # candidates, best first
    keep = []
    while remaining.numel() > 0:
        best, rest = remaining[0], remaining[1:]
        keep.append(best)
        overlap = ops.box_iou(boxes[best][None], boxes[rest])[0]  # IoU of the best box with every other
        remaining = rest[~(overlap > iou_threshold)]  # suppressed boxes leave for good: they suppress nothing
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.int64, device=boxes.device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each class: boxes of different labels never suppress each other
    (as ``torchvision.ops.batched_nms``). Returns kept indices by decreasing score.

    The coordinate-offset trick runs a single NMS for all classes: shifting the boxes of label ``k`` by
    ``k * (largest coordinate + 1)`` in x and y puts every class in its own region of the plane, where
    boxes of other classes cannot overlap it (for image coordinates, which are >= 0).
    """
    check_boxes(boxes)
    check_box_labels(labels, boxes)
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    offsets = labels.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)
