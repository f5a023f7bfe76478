"""Training targets, loss and decoding of the anchor-free dense detector (FCOS, Tian et al. 2019).

- targets: each location of level ``l`` learns the smallest box that contains its centre and whose
  largest side distance max(l, t, r, b) lies in the level's range (``fcos_targets``);
- loss (sec. 3.1-3.3): sigmoid focal loss on the classes (Lin et al. 2017, RetinaNet) over every
  location, GIoU loss on the boxes of the foreground locations weighted by their centerness, and BCE on
  the centerness sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)), each normalised by the number of
  foreground locations;
- decoding: score = sqrt(sigmoid(class) * sigmoid(centerness)), the top candidates per level, boxes from
  the distances, then class-wise non-maximum suppression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision import ops

from cvcourse.detection.anchors import BACKGROUND, fcos_targets, grid_centres

# max(l, t, r, b) each level of strides (4, 8, 16) learns, in pixels: objects of up to ~2x16, 2x32, larger
LEVEL_RANGES = ((0.0, 16.0), (16.0, 32.0), (32.0, math.inf))


def level_points(outputs: Sequence[dict[str, torch.Tensor]], strides: Sequence[int]) -> list[torch.Tensor]:
    """The (x, y) pixel centre of every location of every level, in the flattening order of the maps."""
    return [grid_centres(tuple(out["cls_logits"].shape[-2:]), stride).to(out["cls_logits"].device)
            for out, stride in zip(outputs, strides)]


def flatten(outputs: Sequence[dict[str, torch.Tensor]], key: str) -> torch.Tensor:
    """(B, C, H, W) maps of every level -> (B, locations of all levels, C)."""
    return torch.cat([out[key].flatten(2).transpose(1, 2) for out in outputs], dim=1)


def distances_to_boxes(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """(P, 2) centres and (P, 4) distances (l, t, r, b) -> (P, 4) XYXY boxes."""
    x, y = points.unbind(-1)
    left, top, right, bottom = distances.unbind(-1)
    return torch.stack([x - left, y - top, x + right, y + bottom], dim=-1)


def centerness_target(distances: torch.Tensor) -> torch.Tensor:
    """FCOS eq. 3: 1 at a box's centre, towards 0 at its border."""
    left, top, right, bottom = distances.unbind(-1)
    return torch.sqrt((torch.minimum(left, right) / torch.maximum(left, right))
                      * (torch.minimum(top, bottom) / torch.maximum(top, bottom)))


def assign(points: list[torch.Tensor], boxes: torch.Tensor,
           ranges: Sequence[tuple[float, float]] = LEVEL_RANGES) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's targets over all levels: matched box index (or BACKGROUND) and (l, t, r, b) per location."""
    matches, distances = zip(*(fcos_targets(level, boxes, size_range) for level, size_range in zip(points, ranges)))
    return torch.cat(matches), torch.cat(distances)


def fcos_loss(outputs: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, torch.Tensor]],
              strides: Sequence[int]) -> dict[str, torch.Tensor]:
    """The three FCOS losses for a batch; ``targets`` hold ``boxes`` (N, 4) XYXY and ``labels`` 1..K."""
    points = level_points(outputs, strides)
    all_points = torch.cat(points)
    cls_logits, distances, centerness = (flatten(outputs, key) for key in ("cls_logits", "distances", "centerness"))
    num_classes = cls_logits.shape[-1]
    cls_targets = torch.zeros_like(cls_logits)
    box_losses, centerness_losses, foreground_count = [], [], 0
    for i, target in enumerate(targets):
        matches, target_distances = assign(points, target["boxes"].as_subclass(torch.Tensor).float())
        foreground = matches != BACKGROUND
        labels = target["labels"][matches[foreground]] - 1  # labels 1..K -> channels 0..K-1
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"Target labels must be in 1..{num_classes} (0 is the background), got "
                             f"{sorted(set((labels + 1).tolist()))}.")
        cls_targets[i, foreground.nonzero().squeeze(1), labels] = 1.0
        if foreground.any():
            ctr = centerness_target(target_distances[foreground])
            predicted = distances_to_boxes(all_points[foreground], distances[i, foreground])
            truth = distances_to_boxes(all_points[foreground], target_distances[foreground])
            box_losses.append((ops.generalized_box_iou_loss(predicted, truth, reduction="none") * ctr).sum())
            centerness_losses.append(F.binary_cross_entropy_with_logits(centerness[i, foreground, 0], ctr,
                                                                        reduction="sum"))
            foreground_count += int(foreground.sum())
    normaliser = max(foreground_count, 1)
    zero = cls_logits.sum() * 0.0
    return {"cls": ops.sigmoid_focal_loss(cls_logits, cls_targets, reduction="sum") / normaliser,
            "box": (sum(box_losses) if box_losses else zero) / normaliser,
            "centerness": (sum(centerness_losses) if centerness_losses else zero) / normaliser}


@torch.no_grad()
def decode(outputs: Sequence[dict[str, torch.Tensor]], strides: Sequence[int], *, score_threshold: float = 0.05,
           nms_iou: float = 0.6, candidates_per_level: int = 1000, max_detections: int = 100,
           image_size: tuple[int, int] | None = None) -> list[dict[str, torch.Tensor]]:
    """Detections per image, as torchvision's detectors return them: boxes (XYXY), scores, labels 1..K."""
    points = level_points(outputs, strides)
    results = []
    for i in range(outputs[0]["cls_logits"].shape[0]):
        boxes, scores, labels = [], [], []
        for out, level_points_ in zip(outputs, points):
            probabilities = torch.sqrt(torch.sigmoid(out["cls_logits"][i]).flatten(1).T
                                       * torch.sigmoid(out["centerness"][i]).flatten(1).T)  # (P, K)
            keep = probabilities > score_threshold
            candidate_scores = probabilities[keep]
            location, label = keep.nonzero().unbind(1)
            if candidate_scores.numel() > candidates_per_level:
                candidate_scores, order = candidate_scores.topk(candidates_per_level)
                location, label = location[order], label[order]
            distances = out["distances"][i].flatten(1).T[location]
            boxes.append(distances_to_boxes(level_points_[location], distances))
            scores.append(candidate_scores)
            labels.append(label + 1)
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        if image_size is not None:
            boxes = ops.clip_boxes_to_image(boxes, image_size)
        keep = ops.batched_nms(boxes, scores, labels, nms_iou)[:max_detections]
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return results
