"""Detection exercises: box_iou, nms and average_precision.

Each checker runs the student's function on deterministic cases, compares it with torchvision or the
course's implementation (``cvcourse.detection``, itself checked against pycocotools), and recognises
the usual mistakes by recomputing them: a wrong answer that equals a known mistake gets its hint.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchvision import ops

from cvcourse.detection.evaluate import (
    RECALL_LEVELS,
    average_precision,
    interpolated_precision,
    precision_envelope,
    precision_recall,
)
from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.exercises.segmentation import as_number


def random_boxes(generator: torch.Generator, count: int, image_size: float = 50.0) -> torch.Tensor:
    """``count`` xyxy boxes with fractional corners, sides from 5 to 25 pixels."""
    corners = torch.rand(count, 2, generator=generator) * image_size
    sizes = 5 + 20 * torch.rand(count, 2, generator=generator)
    return torch.cat([corners, corners + sizes], dim=1)


# ---------------------------------------------------------------------------------------------
# box_iou(boxes1 (N, 4), boxes2 (M, 4)) -> (N, M)


def box_iou_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Deterministic (description, boxes1, boxes2): identical, overlapping, nested and disjoint pairs."""
    generator = torch.Generator().manual_seed(0)
    boxes1 = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 30.0, 25.0]])
    boxes2 = torch.tensor([[0.0, 0.0, 10.0, 10.0], [12.0, 0.0, 18.0, 4.0], [2.0, 2.0, 6.0, 6.0], [1.0, 3.0, 9.0, 8.0]])
    return [
        ("identical, overlapping, nested and disjoint boxes (N=3, M=4)", boxes1, boxes2),
        ("random boxes with fractional corners (N=6, M=5)", random_boxes(generator, 6), random_boxes(generator, 5)),
        ("no boxes on one side (N=0, M=2)", torch.zeros(0, 4), boxes2[:2]),
    ]


def box_iou_variant(boxes1: torch.Tensor, boxes2: torch.Tensor, *, plus_one: bool = False, clamp: bool = True,
                    subtract_overlap: bool = True) -> torch.Tensor:
    """IoU written the student's way, with switches for the usual mistakes (defaults: the right answer)."""
    extra = 1.0 if plus_one else 0.0
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    width, height = (bottom_right - top_left + extra).unbind(dim=2)
    if clamp:
        width, height = width.clamp(min=0), height.clamp(min=0)
    area1 = (boxes1[:, 2] - boxes1[:, 0] + extra) * (boxes1[:, 3] - boxes1[:, 1] + extra)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + extra) * (boxes2[:, 3] - boxes2[:, 1] + extra)
    union = area1[:, None] + area2[None, :] - (width * height if subtract_overlap else 0.0)
    return width * height / union


def box_iou_hint(got: torch.Tensor, boxes1: torch.Tensor, boxes2: torch.Tensor) -> str:
    """Name the mistake that gives IoUs ``got`` of the right shape, or give a general hint."""
    mistakes = [
        ({"plus_one": True}, ("the '+1' belongs to the old inclusive-pixel convention (Pascal VOC); here x2 is the "
                              "edge after the last pixel, so a width is x2 - x1 and an area (x2 - x1) * (y2 - y1)")),
        ({"clamp": False}, ("boxes that do not overlap get a negative width or height of their intersection, and "
                            "two negatives make a positive area: clamp both at 0 with .clamp(min=0)")),
        ({"subtract_overlap": False}, "the union counts the intersection twice: it is area1 + area2 - intersection"),
    ]
    for switches, hint in mistakes:
        if torch.allclose(got, box_iou_variant(boxes1, boxes2, **switches), atol=1e-5, equal_nan=True):
            return hint
    return ("take the intersection's corners with torch.maximum (top-left) and torch.minimum (bottom-right) of "
            "boxes1[:, None, :] and boxes2[None, :, :], then IoU = intersection / union")


@checker("box_iou")
def check_box_iou(answer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare with ``torchvision.ops.box_iou``."""
    cases = box_iou_cases()
    for case, boxes1, boxes2 in cases:
        result = call_answer("box_iou", answer, case, boxes1.clone(), boxes2.clone())
        try:
            got = torch.as_tensor(result, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise ExerciseFailed(f"box_iou should return a tensor (N, M), got {type(result).__name__} on {case}; "
                                 "build the result with tensor operations, not a Python list of tensors") from None
        expected = ops.box_iou(boxes1, boxes2)
        if got.shape != expected.shape:
            if got.shape == expected.T.shape:
                hint = "rows should follow boxes1 and columns boxes2: transpose it, or swap the [:, None] and [None, :]"
            elif got.numel() == 0:
                hint = "without boxes the result is still (N, M): compute it by broadcasting, not in a Python list"
            else:
                hint = ("compare every box of boxes1 with every box of boxes2 by broadcasting boxes1[:, None, :] "
                        "against boxes2[None, :, :]")
            raise ExerciseFailed(f"box_iou should return shape {tuple(expected.shape)} (N, M) on {case}, got "
                                 f"{tuple(got.shape)}; {hint}")
        if not torch.allclose(got, expected, atol=1e-5):
            raise ExerciseFailed(f"wrong IoUs for {case}: {box_iou_hint(got, boxes1, boxes2)}")
    return f"all {len(cases)} cases match torchvision.ops.box_iou"


# ---------------------------------------------------------------------------------------------
# nms(boxes, scores, iou_threshold) -> kept indices by decreasing score


def nms_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    """Deterministic (description, boxes, scores, iou_threshold) with distinct scores."""
    generator = torch.Generator().manual_seed(0)
    # A row of three 10 x 10 boxes shifted by 3 pixels: neighbours overlap with IoU 0.54, the two ends 0.25.
    row = torch.tensor([[3.0, 0.0, 13.0, 10.0], [0.0, 0.0, 10.0, 10.0], [6.0, 0.0, 16.0, 10.0]])
    # The second box covers half of the first: IoU exactly 0.5.
    half = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0]])
    return [
        ("three overlapping boxes in a row, not listed by score", row, torch.tensor([0.8, 0.9, 0.7]), 0.5),
        ("two boxes whose IoU is exactly the threshold 0.5", half, torch.tensor([0.9, 0.8, 0.7]), 0.5),
        ("40 random boxes", random_boxes(generator, 40), torch.randperm(40, generator=generator) / 40.0, 0.3),
        ("no boxes", torch.zeros(0, 4), torch.zeros(0), 0.5),
    ]


def nms_variant(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, *, sort_by_score: bool = True,
                suppress_equal: bool = False, suppressed_suppress: bool = False) -> list[int]:
    """Greedy NMS written the student's way, with switches for the usual mistakes (defaults: the right answer)."""
    order = scores.argsort(descending=True) if sort_by_score else torch.arange(len(scores))
    ious = ops.box_iou(boxes, boxes)
    keep, suppressed = [], set()
    for position, i in enumerate(order.tolist()):
        if i in suppressed and not suppressed_suppress:
            continue
        if i not in suppressed:
            keep.append(i)
        for j in order[position + 1:].tolist():
            if ious[i, j] > iou_threshold or (suppress_equal and ious[i, j] == iou_threshold):
                suppressed.add(j)
    return keep


def nms_hint(got: list[int], boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> str:
    """Name the mistake that keeps the boxes ``got``, or give a general hint."""
    expected = ops.nms(boxes, scores, iou_threshold).tolist()
    mask = [int(i in expected) for i in range(len(boxes))]
    if got == mask:
        return "this looks like a mask of kept boxes; return their indices, by decreasing score"
    if sorted(got) == sorted(expected):
        return "the right boxes, in the wrong order: return the kept indices by decreasing score"
    mistakes = [
        ({"sort_by_score": False}, ("visit the boxes by decreasing score (scores.argsort(descending=True)), not "
                                    "in the order they are listed: the best box must suppress the others")),
        ({"suppress_equal": True}, ("a box is suppressed only when its IoU is *above* the threshold (>), as "
                                    "torchvision.ops.nms; an IoU equal to it is kept")),
        ({"suppressed_suppress": True}, ("a suppressed box still suppresses others here: once suppressed, a box "
                                         "is out and must not remove boxes itself")),
    ]
    for switches, hint in mistakes:
        if got == nms_variant(boxes, scores, iou_threshold, **switches):
            return hint
    return ("keep the best remaining box, drop the remaining boxes whose IoU with it is above the threshold, and "
            "repeat until no box remains")


@checker("nms")
def check_nms(answer: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    """Compare with ``torchvision.ops.nms``."""
    cases = nms_cases()
    for case, boxes, scores, iou_threshold in cases:
        result = call_answer("nms", answer, case, boxes.clone(), scores.clone(), iou_threshold)
        if isinstance(result, torch.Tensor) and result.dtype == torch.bool:
            raise ExerciseFailed(f"nms returned a bool mask on {case}; return the indices of the kept boxes "
                                 "(mask.nonzero() gives them), by decreasing score")
        try:
            got = [int(i) for i in torch.as_tensor(result).flatten().tolist()]
        except (TypeError, ValueError, RuntimeError):
            raise ExerciseFailed(f"nms should return a tensor of indices, got {type(result).__name__} on {case}; "
                                 "collect the kept indices in a list and return torch.tensor(keep)") from None
        if got != ops.nms(boxes, scores, iou_threshold).tolist():
            raise ExerciseFailed(f"wrong boxes kept for {case}: {nms_hint(got, boxes, scores, iou_threshold)}")
    return f"all {len(cases)} cases match torchvision.ops.nms"


# ---------------------------------------------------------------------------------------------
# average_precision(scores, is_true_positive, num_ground_truth) -> float

VOC_RECALL_LEVELS = torch.linspace(0, 1, 11, dtype=torch.float64)
GENERAL_AP_HINT = ("sort by score, cumulate TP and FP, precision = TP / (TP + FP), recall = TP / num_ground_truth, "
                   "take the precision envelope and average it at the recall levels torch.linspace(0, 1, 101)")


def average_precision_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    """Deterministic (description, scores, is_true_positive, num_ground_truth) of one class. The numbers of
    objects (9, 3, 43) make no recall k / n equal a level i / 100 but 0 and 1, so float rounding cannot
    decide which detection a level reads."""
    generator = torch.Generator().manual_seed(0)
    scores = torch.tensor([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5])
    hits = torch.tensor([True, False, True, True, False, False, True])
    shuffle = torch.tensor([4, 0, 6, 2, 1, 5, 3])
    many_scores = torch.randperm(60, generator=generator) / 60.0
    many_hits = torch.rand(60, generator=generator) < many_scores  # better scores are more often right
    return [
        ("7 detections by decreasing score, 9 objects", scores, hits, 9),
        ("the same detections not sorted by score", scores[shuffle], hits[shuffle], 9),
        ("every object found between false alarms", scores[:6], torch.tensor([0, 1, 1, 0, 1, 0]).bool(), 3),
        ("60 random detections, 43 objects", many_scores, many_hits, 43),
        ("no detections, 3 objects", torch.zeros(0), torch.zeros(0, dtype=torch.bool), 3),
    ]


def average_precision_mistakes(scores: torch.Tensor, hits: torch.Tensor,
                               num_ground_truth: int) -> list[tuple[float, str]]:
    """The AP each usual mistake gives on this case, with its hint."""
    precision, recall = precision_recall(scores, hits, num_ground_truth)
    envelope = precision_envelope(precision)
    recall_by_detections = recall * num_ground_truth / max(len(scores), 1)
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    listed_order = torch.arange(len(scores), 0, -1, dtype=torch.float32)  # the detections as listed
    return [
        (interpolated_precision(precision, recall, RECALL_LEVELS).mean().item(),
         ("this reads the raw precision; take its envelope first, the best precision at this or any higher recall "
          "(a running max from the end), so that AP does not depend on the zig-zags of the curve")),
        (interpolated_precision(envelope, recall, VOC_RECALL_LEVELS).mean().item(),
         ("this is Pascal VOC's 11-point AP (recall 0, 0.1, ..., 1); COCO reads the envelope at the 101 levels "
          "0, 0.01, ..., 1")),
        (interpolated_precision(envelope, recall_by_detections, RECALL_LEVELS).mean().item(),
         ("recall divides the true positives by the number of ground-truth objects, not of detections: missed "
          "objects must lower the recall")),
        ((steps * precision).sum().item(),
         ("this is the area under the raw curve at every detection (sklearn's average_precision_score); COCO "
          "averages the precision envelope at 101 recall levels")),
        ((steps * envelope).sum().item(),
         ("this is the all-point AP of Pascal VOC 2010 (area under the envelope); COCO averages the envelope at "
          "101 recall levels 0, 0.01, ..., 1")),
        (average_precision(listed_order, hits, num_ground_truth),
         ("sort the detections by decreasing score first (scores.argsort(descending=True)) and reorder "
          "is_true_positive the same way")),
    ]


@checker("average_precision")
def check_average_precision(answer: Callable[[torch.Tensor, torch.Tensor, int], float]) -> str:
    """Compare with ``cvcourse.detection.average_precision`` (equal to pycocotools' per-class AP)."""
    cases = average_precision_cases()
    for case, scores, hits, num_ground_truth in cases:
        result = call_answer("average_precision", answer, case, scores.clone(), hits.clone(), num_ground_truth)
        got = as_number(result, "average_precision", "the AP")
        if math.isclose(got, average_precision(scores, hits, num_ground_truth), abs_tol=1e-6):
            continue
        if len(scores) == 0:
            raise ExerciseFailed(f"wrong AP for {case}: with no detections nothing is found, so AP is 0.0; return "
                                 "it before any division by the number of detections")
        hint = next((hint for value, hint in average_precision_mistakes(scores, hits, num_ground_truth)
                     if math.isclose(got, value, abs_tol=1e-6)), GENERAL_AP_HINT)
        raise ExerciseFailed(f"wrong AP for {case}: {hint}")
    return f"all {len(cases)} cases match cvcourse.detection.average_precision"
