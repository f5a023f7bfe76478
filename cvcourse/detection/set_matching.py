"""One-to-one matching of a set of predicted boxes to the ground truth, and the set loss it defines.

Detectors that predict a fixed set of N boxes (DETR, Carion et al. 2020; Sparse R-CNN, Sun et al. 2021;
DiffusionDet, Chen et al. 2023) need no anchors and no NMS in training: each ground-truth box is given to exactly one
prediction, the pairing of least total cost (the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``),
and every other prediction learns "no object". The cost of giving ground truth j to prediction i is

    cost[i, j] = w_class * focal_cost(i, label_j) + w_l1 * |box_i - box_j|_1 + w_giou * (-GIoU(box_i, box_j)),

with boxes divided by the image's width and height for the L1 term, and the focal cost the difference between the
focal losses of calling i class ``label_j`` and of calling it not (Zhu et al. 2021, Deformable DETR). The loss then
uses the same three terms on the matched pairs: the sigmoid focal loss on the class logits of all N predictions
(matched ones target their ground-truth class, the others all zeros), the L1 and 1 - GIoU losses on the matched
boxes, each divided by the number of ground-truth boxes. Labels are 1..K, as everywhere in the course (0 is the
background), and the K class logits of a prediction are channels 0..K-1, as in :mod:`cvcourse.detection.fcos`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy.optimize import linear_sum_assignment
from torchvision import ops

from cvcourse.detection.boxes import check_box_labels, check_boxes, check_image_size

FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0


@dataclass(frozen=True)
class SetLossWeights:
    """The weights of the class, L1 and GIoU terms, in the matching cost and in the loss (DiffusionDet's 2, 5, 2)."""

    classification: float = 2.0
    l1: float = 5.0
    giou: float = 2.0


def _check_predictions(logits: torch.Tensor, boxes: torch.Tensor) -> None:
    if logits.ndim != 2 or boxes.ndim != 2 or boxes.shape[-1] != 4 or len(logits) != len(boxes):
        raise ValueError(f"expected class logits (N, num_classes) and boxes (N, 4) of one image, got "
                         f"{tuple(logits.shape)} and {tuple(boxes.shape)}; pass one image's predictions at a time.")


def normalised(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """xyxy boxes in pixels divided by (width, height, width, height) of an image of (height, width)."""
    height, width = check_image_size(image_size)
    return boxes / boxes.new_tensor([width, height, width, height])


def matching_cost(logits: torch.Tensor, boxes: torch.Tensor, gt_labels: torch.Tensor, gt_boxes: torch.Tensor,
                  image_size: tuple[int, int], weights: SetLossWeights = SetLossWeights()) -> torch.Tensor:
    """(N, G) cost of giving each of G ground-truth boxes to each of N predictions (the module's formula)."""
    _check_predictions(logits, boxes)
    check_boxes(gt_boxes, name="gt_boxes")
    check_box_labels(gt_labels, gt_boxes, name="gt_labels", num_classes=logits.shape[1] + 1)
    p = logits.sigmoid()[:, gt_labels - 1]  # (N, G): the probability of each ground truth's class
    positive = FOCAL_ALPHA * (1 - p) ** FOCAL_GAMMA * -(p + 1e-8).log()
    negative = (1 - FOCAL_ALPHA) * p**FOCAL_GAMMA * -(1 - p + 1e-8).log()
    l1 = torch.cdist(normalised(boxes, image_size), normalised(gt_boxes, image_size), p=1)
    giou = ops.generalized_box_iou(boxes, gt_boxes)
    return weights.classification * (positive - negative) + weights.l1 * l1 - weights.giou * giou


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The one-to-one pairing of least total cost: (prediction indices, ground-truth indices), one pair per ground
    truth, ordered by ground truth. Needs at least as many predictions as ground-truth boxes."""
    if cost.ndim != 2 or cost.shape[0] < cost.shape[1]:
        raise ValueError(f"expected a cost matrix (N predictions, G ground truths) with N >= G, got "
                         f"{tuple(cost.shape)}; predict at least as many boxes as an image has objects.")
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    order = cols.argsort()
    return torch.as_tensor(rows[order], dtype=torch.long), torch.as_tensor(cols[order], dtype=torch.long)


def set_loss(logits: torch.Tensor, boxes: torch.Tensor, gt_labels: torch.Tensor, gt_boxes: torch.Tensor,
             image_size: tuple[int, int], weights: SetLossWeights = SetLossWeights()) -> dict[str, torch.Tensor]:
    """The weighted class, L1 and GIoU losses of one image's N predictions after the Hungarian matching, and their
    sum (``"loss"``). An image without objects teaches every prediction "no object" (class term only)."""
    _check_predictions(logits, boxes)
    with torch.no_grad():
        cost = matching_cost(logits, boxes, gt_labels, gt_boxes, image_size, weights)
    predicted, truth = hungarian_match(cost)
    target = torch.zeros_like(logits)
    target[predicted, gt_labels[truth] - 1] = 1.0
    count = max(len(gt_boxes), 1)
    terms = {"classification": ops.sigmoid_focal_loss(logits, target, alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA,
                                                      reduction="sum") / count}
    matched, matched_truth = boxes[predicted], gt_boxes[truth]
    terms["l1"] = (normalised(matched, image_size) - normalised(matched_truth, image_size)).abs().sum() / count
    terms["giou"] = ops.generalized_box_iou_loss(matched, matched_truth, reduction="sum") / count
    weighted = {name: getattr(weights, name) * value for name, value in terms.items()}
    return {**weighted, "loss": sum(weighted.values())}
