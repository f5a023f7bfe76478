"""Object detection: boxes, non-maximum suppression, anchors and their matching, and COCO-style evaluation."""

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

__all__ = [
    "BACKGROUND",
    "IGNORE",
    "average_precision",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
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
    "interpolated_precision",
    "make_anchors",
    "match_anchors",
    "nms",
    "precision_envelope",
    "precision_recall",
    "precision_recall_curve",
    "remove_small_boxes",
    "to_coco",
]
