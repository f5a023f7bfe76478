"""Object detection: boxes, non-maximum suppression, anchors and their matching, one-to-one (Hungarian) matching and
the set loss, boxes as a diffusion model's signal, and COCO-style evaluation."""

from cvcourse.detection.anchors import (
    BACKGROUND,
    IGNORE,
    decode,
    encode,
    fcos_targets,
    grid_centres,
    make_anchors,
    match_anchors,
)
from cvcourse.detection.box_diffusion import (
    boxes_to_signal,
    padded_with_random_boxes,
    random_unit_boxes,
    renew_boxes,
    signal_to_boxes,
)
from cvcourse.detection.boxes import (
    box_area,
    box_convert,
    box_iou,
    check_box_labels,
    check_boxes,
    clip_boxes_to_image,
    generalized_box_iou,
    remove_small_boxes,
)
from cvcourse.detection.evaluate import (
    average_precision,
    check_detections,
    evaluate_detections,
    interpolated_precision,
    precision_envelope,
    precision_recall,
    precision_recall_curve,
    to_coco,
)
from cvcourse.detection.nms import batched_nms, nms
from cvcourse.detection.set_matching import SetLossWeights, hungarian_match, matching_cost, set_loss

__all__ = [
    "BACKGROUND",
    "IGNORE",
    "SetLossWeights",
    "average_precision",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "boxes_to_signal",
    "check_box_labels",
    "check_boxes",
    "check_detections",
    "clip_boxes_to_image",
    "decode",
    "encode",
    "evaluate_detections",
    "fcos_targets",
    "generalized_box_iou",
    "grid_centres",
    "hungarian_match",
    "interpolated_precision",
    "make_anchors",
    "match_anchors",
    "matching_cost",
    "nms",
    "padded_with_random_boxes",
    "precision_envelope",
    "precision_recall",
    "precision_recall_curve",
    "random_unit_boxes",
    "remove_small_boxes",
    "renew_boxes",
    "set_loss",
    "signal_to_boxes",
    "to_coco",
]
