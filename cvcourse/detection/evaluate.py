"""COCO-style evaluation of detections: AP per class, AP50, AP75, mAP@[.5:.95] and AP by object size.

The COCO detection metrics (Lin et al. 2014, "Microsoft COCO: Common Objects in Context"; the
definitions at cocodataset.org/#detection-eval and in pycocotools' cocoeval.py). For one class at one
IoU threshold:

1. in each image, keep the class's 100 highest-scoring detections (COCO's maxDets counts per image
   and per class);
2. in each image, walk through them by decreasing score: a detection takes the not yet matched
   ground-truth box it overlaps most, if their IoU >= threshold (a true positive, TP); else it is a
   false positive (FP). A second detection of a matched object is an FP: duplicates are punished;
3. pool the images, sort by score and count: after the k best detections, precision = TP / k and
   recall = TP / (number of ground-truth boxes);
4. precision envelope: the precision at recall r becomes the best precision at any recall >= r;
5. AP = the mean of the envelope at the 101 recall levels 0, 0.01, ..., 1 (0 at levels never reached).

mAP@[.5:.95] (COCO's "AP") averages AP over the IoU thresholds 0.50, 0.55, ..., 0.95 and over the classes
that have ground truth. AP by size (small: box area up to 32^2, medium: 32^2 to 96^2, large: above; the
bounds belong to both sides, as in pycocotools) scores only the objects of that size: the other ground-truth
boxes are *ignored*, and so are the detections matched to them and the unmatched detections of another
size: neither TP, FP nor missed. Empty images are fine: an image without ground truth makes its detections
FPs, one without detections makes its objects missed.
Every convention follows pycocotools' COCOeval for boxes (crowd boxes aside), checked in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torchvision import ops

from cvcourse.detection.boxes import check_box_labels, check_boxes
from cvcourse.detection.nms import check_scores

# np.linspace gives pycocotools' exact thresholds, so that a recall of exactly 0.3 counts the same way.
IOU_THRESHOLDS = torch.from_numpy(np.linspace(0.5, 0.95, 10))
RECALL_LEVELS = torch.from_numpy(np.linspace(0.0, 1.0, 101))
AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
MAX_DETECTIONS = 100
EMPTY_PREDICTION_HINT = ('give an image without detections {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), '
                         '"labels": torch.zeros(0, dtype=torch.int64)}')


def check_detections(predictions: Sequence[dict], targets: Sequence[dict], num_classes: int | None = None) -> None:
    """Raise one clear error unless ``predictions`` and ``targets`` are lists of dicts, one per image, in
    torchvision's format: {"boxes" (N, 4) xyxy, "scores" (N,), "labels" (N,)} and {"boxes", "labels"}."""
    if isinstance(predictions, dict) or isinstance(targets, dict):
        raise TypeError("predictions and targets should be lists of dicts, one per image; wrap a single "
                        "image's dict in a list: [prediction]")
    if len(predictions) != len(targets):
        raise ValueError(f"expected one prediction per target image, got {len(predictions)} predictions and "
                         f"{len(targets)} targets; {EMPTY_PREDICTION_HINT}")
    for i, (prediction, target) in enumerate(zip(predictions, targets)):
        for name, item, keys in (("predictions", prediction, ("boxes", "scores", "labels")),
                                 ("targets", target, ("boxes", "labels"))):
            missing = [key for key in keys if key not in item]
            if missing:
                raise ValueError(f"{name}[{i}] has no {missing}; it needs the keys {keys}; {EMPTY_PREDICTION_HINT}")
            check_boxes(item["boxes"], name=f"{name}[{i}]['boxes']")
            check_box_labels(item["labels"], item["boxes"], f"{name}[{i}]['labels']", num_classes)
        check_scores(prediction["scores"], prediction["boxes"], name=f"predictions[{i}]['scores']")


def precision_recall(scores: torch.Tensor, is_true_positive: torch.Tensor,
                     num_ground_truth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision and recall (float64 (D,), on the CPU) after each of the best 1, 2, ..., D detections of one class.

    Detections are sorted by decreasing score; equal scores keep their order (a stable sort, as pycocotools).
    """
    if not isinstance(is_true_positive, torch.Tensor) or is_true_positive.shape != scores.shape:
        raise ValueError(f"is_true_positive should be a bool tensor shaped like scores {tuple(scores.shape)}; "
                         "mark each detection True (TP) or False (FP)")
    if num_ground_truth < int(is_true_positive.sum()):
        raise ValueError(f"{int(is_true_positive.sum())} true positives but only {num_ground_truth} ground-truth "
                         "boxes: a box was matched twice; mark each box as matched once it is taken")
    order = torch.sort(scores.cpu(), descending=True, stable=True).indices
    hits = is_true_positive.cpu()[order].bool()
    true_positives = hits.cumsum(dim=0).double()
    false_positives = (~hits).cumsum(dim=0).double()
    return true_positives / (true_positives + false_positives), true_positives / num_ground_truth


def precision_envelope(precision: torch.Tensor) -> torch.Tensor:
    """The best precision at this or any later (higher-recall) rank: a running max from the end."""
    return precision.flip(0).cummax(dim=0).values.flip(0)


def interpolated_precision(precision: torch.Tensor, recall: torch.Tensor, recall_levels: torch.Tensor) -> torch.Tensor:
    """The precision at the first rank whose recall reaches each level (float64, like ``recall_levels``),
    0 for a level the recall never reaches."""
    if len(recall) == 0:
        return torch.zeros_like(recall_levels)
    first_reaching = torch.searchsorted(recall, recall_levels, side="left")  # first rank with recall >= level
    reached = first_reaching < len(recall)
    return torch.where(reached, precision[first_reaching.clamp(max=len(recall) - 1)], 0.0)


def average_precision(scores: torch.Tensor, is_true_positive: torch.Tensor, num_ground_truth: int) -> float:
    """AP of one class: the precision envelope read at the 101 recall levels 0, 0.01, ..., 1, averaged
    (COCO's interpolation; 0 where the recall never gets that high). No detections score 0."""
    if isinstance(num_ground_truth, bool) or not isinstance(num_ground_truth, int) or num_ground_truth < 1:
        raise ValueError(f"num_ground_truth should be a positive integer, got {num_ground_truth!r}; AP is "
                         "undefined for a class without ground truth: leave that class out of the mean")
    precision, recall = precision_recall(scores, is_true_positive, num_ground_truth)
    return interpolated_precision(precision_envelope(precision), recall, RECALL_LEVELS).mean().item()


class ClassInImage(NamedTuple):
    """One image's detections (best first, at most ``max_detections``) and ground truth of one class."""

    scores: torch.Tensor  # (D,)
    detection_areas: torch.Tensor  # (D,) float64
    truth_areas: torch.Tensor  # (G,) float64
    ious: torch.Tensor  # (D, G) float64


def select_class(prediction: dict, target: dict, label: int, max_detections: int) -> ClassInImage:
    """The detections and ground truth of class ``label`` in one image, on the CPU, IoUs in float64 (as
    pycocotools)."""
    mine = prediction["labels"].cpu() == label
    scores, order = torch.sort(prediction["scores"].cpu()[mine], descending=True, stable=True)
    detections = prediction["boxes"].cpu()[mine][order[:max_detections]].double()
    truths = target["boxes"].cpu()[target["labels"].cpu() == label].double()
    ious = ops.box_iou(detections, truths).nan_to_num(0.0)  # two empty boxes: 0 / 0, no overlap
    return ClassInImage(scores[:max_detections], ops.box_area(detections), ops.box_area(truths), ious)


def match_detections(ious: torch.Tensor, truth_ignored: torch.Tensor,
                     iou_thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy matching in one image at every IoU threshold at once.

    ``ious`` (D, G) pairs the detections (rows, best score first) with the ground-truth boxes. Returns
    ``matched`` and ``matched_ignored``, bool (T, D): whether each detection took a box at each
    threshold, and whether that box was an ignored one (only taken when no counted box is left).
    Of boxes with exactly the same IoU, the last one is taken, as in pycocotools.
    """
    num_detections, num_truths = ious.shape
    matched = torch.zeros(len(iou_thresholds), num_detections, dtype=torch.bool)
    matched_ignored = torch.zeros_like(matched)
    taken = torch.zeros(len(iou_thresholds), num_truths, dtype=torch.bool)
    if num_truths == 0:
        return matched, matched_ignored
    counted_first = 2.0 * (~truth_ignored).double()  # IoUs are <= 1: adding 2 ranks counted boxes first
    for d in range(num_detections):
        candidates = ~taken & (ious[d] >= iou_thresholds[:, None])  # (T, G)
        rank = torch.where(candidates, ious[d] + counted_first, -1.0)  # (T, G)
        best = num_truths - 1 - rank.flip(dims=[1]).argmax(dim=1)  # (T,): argmax finds the first, we want the last
        found = candidates.any(dim=1)
        taken[found, best[found]] = True
        matched[:, d] = found
        matched_ignored[:, d] = found & truth_ignored[best]
    return matched, matched_ignored


def class_average_precisions(images: Sequence[ClassInImage], area_range: tuple[float, float]) -> torch.Tensor | None:
    """(T,) AP of one class at each IoU threshold, scoring objects in ``area_range``; None without any."""
    low, high = area_range
    scores, matched, ignored, num_truths = [], [], [], 0
    for image in images:
        truth_ignored = (image.truth_areas < low) | (image.truth_areas > high)
        image_matched, matched_ignored = match_detections(image.ious, truth_ignored, IOU_THRESHOLDS)
        outside = (image.detection_areas < low) | (image.detection_areas > high)
        scores.append(image.scores)
        matched.append(image_matched)
        ignored.append(matched_ignored | (~image_matched & outside))
        num_truths += int((~truth_ignored).sum())
    if num_truths == 0:
        return None
    scores, matched, ignored = torch.cat(scores), torch.cat(matched, dim=1), torch.cat(ignored, dim=1)
    return torch.tensor([average_precision(scores[~skip], hit[~skip], num_truths)
                         for hit, skip in zip(matched, ignored)], dtype=torch.float64)


def evaluate_detections(predictions: Sequence[dict], targets: Sequence[dict], num_classes: int | None = None,
                        max_detections: int = MAX_DETECTIONS,
                        size_ranges: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """COCO's box metrics of a dataset: a dict with "map" (mAP@[.5:.95]), "map_50", "map_75", "map_small",
    "map_medium", "map_large" (floats) and "map_per_class" ({label: AP@[.5:.95]}), the keys of torchmetrics.

    ``predictions`` and ``targets`` are lists with one dict per image, as torchvision's detection models
    output and take them (see ``check_detections``). A metric without ground truth to score is NaN: "map"
    when no image has a box, "map_small" without small boxes, and the classes of 1..num_classes - 1
    (``num_classes`` counting the background, given to check labels and list absent classes) without any.
    ``size_ranges`` replaces COCO's small / medium / large box areas (32^2 and 96^2 px, made for images of
    about 640x480 px), e.g. with ``cvcourse.data.coco_area_ranges(image_size)`` for smaller images.
    """
    check_detections(predictions, targets, num_classes)
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
        raise ValueError(f"max_detections should be a positive integer, got {max_detections!r}; COCO uses 100")
    labels = sorted({int(label) for target in targets for label in target["labels"]})
    if num_classes is not None:
        labels = list(range(1, num_classes))
    ranges = AREA_RANGES if size_ranges is None else {"all": AREA_RANGES["all"], **size_ranges}
    if set(ranges) != set(AREA_RANGES):
        raise ValueError(f"size_ranges needs exactly the keys small, medium, large; got {sorted(size_ranges)}")
    aps: dict[str, dict[int, torch.Tensor]] = {area: {} for area in ranges}
    for label in labels:
        images = [select_class(p, t, label, max_detections) for p, t in zip(predictions, targets)]
        for area, area_range in ranges.items():
            per_threshold = class_average_precisions(images, area_range)
            if per_threshold is not None:
                aps[area][label] = per_threshold
    return {"map": mean_ap(aps["all"]), "map_50": mean_ap(aps["all"], 0.5), "map_75": mean_ap(aps["all"], 0.75),
            "map_small": mean_ap(aps["small"]), "map_medium": mean_ap(aps["medium"]),
            "map_large": mean_ap(aps["large"]),
            "map_per_class": {label: aps["all"][label].mean().item() if label in aps["all"] else float("nan")
                              for label in labels}}


def mean_ap(aps: dict[int, torch.Tensor], iou_threshold: float | None = None) -> float:
    """The mean of the classes' APs (T,) over classes and IoU thresholds, or at one ``iou_threshold``."""
    if not aps:
        return float("nan")
    table = torch.stack(list(aps.values()))  # (classes, thresholds)
    if iou_threshold is not None:
        table = table[:, torch.isclose(IOU_THRESHOLDS, torch.tensor(iou_threshold, dtype=torch.float64))]
    return table.mean().item()


def precision_recall_curve(predictions: Sequence[dict], targets: Sequence[dict], label: int,
                           iou_threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision and recall (D,) of class ``label`` over a dataset, one point per detection by decreasing
    score, at one IoU threshold (the 100-per-image limit applies). Plot ``precision_envelope(precision)``
    too to see what AP averages."""
    check_detections(predictions, targets)
    images = [select_class(p, t, label, MAX_DETECTIONS) for p, t in zip(predictions, targets)]
    num_truths = sum(len(image.truth_areas) for image in images)
    if num_truths == 0:
        raise ValueError(f"class {label} has no ground-truth box in targets, so its recall is undefined; "
                         "pick a label that occurs in the targets")
    threshold = torch.tensor([iou_threshold], dtype=torch.float64)
    matched = [match_detections(image.ious, torch.zeros(image.ious.shape[1], dtype=torch.bool), threshold)[0][0]
               for image in images]
    return precision_recall(torch.cat([image.scores for image in images]), torch.cat(matched), num_truths)


def to_coco(predictions: Sequence[dict], targets: Sequence[dict]) -> tuple[dict, list[dict]]:
    """The same data as COCO json: a ground-truth dataset {"images", "annotations", "categories"} and a
    result list, for ``pycocotools``. Image ids are the list indices; boxes become [x, y, width, height]
    in float64, and a ground-truth box's "area" is its box area, as COCO does for detection results."""
    check_detections(predictions, targets)
    annotations, results = [], []
    for image_id, (prediction, target) in enumerate(zip(predictions, targets)):
        boxes = ops.box_convert(target["boxes"].double(), "xyxy", "xywh").tolist()
        for box, label in zip(boxes, target["labels"].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        boxes = ops.box_convert(prediction["boxes"].double(), "xyxy", "xywh").tolist()
        for box, score, label in zip(boxes, prediction["scores"].tolist(), prediction["labels"].tolist()):
            results.append({"image_id": image_id, "category_id": label, "bbox": box, "score": score})
    categories = sorted({item["category_id"] for item in annotations + results})
    dataset = {"images": [{"id": i} for i in range(len(targets))], "annotations": annotations,
               "categories": [{"id": label} for label in categories]}
    return dataset, results
