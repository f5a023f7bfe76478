"""Bounding boxes: formats, checks, IoU, clipping. Thin wrappers over ``torchvision.ops`` that first check
their input and fail with one clear message.

Conventions (as torchvision and COCO): a set of boxes is a float tensor (N, 4); ``xyxy`` boxes hold the
corners (x1, y1, x2, y2) in pixel-edge coordinates, so a box covering pixel columns 3..5 has x1 = 3 and
x2 = 6, and its width is x2 - x1 (no "+1"). The other formats are ``xywh`` (top-left corner, width,
height; COCO's json) and ``cxcywh`` (centre, width, height; DETR, YOLO). An image size is (height, width).
An empty set of boxes, shape (0, 4), is valid everywhere.
"""

from __future__ import annotations

import torch
from torchvision import ops, tv_tensors

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def check_image_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """``image_size`` as (height, width) after checking it holds two positive numbers."""
    if not isinstance(image_size, (tuple, list, torch.Size)) or len(image_size) != 2 or min(image_size) <= 0:
        raise ValueError(
            f"image_size should be (height, width), two positive numbers, got {image_size!r}; "
            "for an image tensor (C, H, W) pass image.shape[-2:]"
        )
    return int(image_size[0]), int(image_size[1])


def check_box_tensor(boxes: torch.Tensor, name: str = "boxes") -> None:
    """Raise a ValueError unless ``boxes`` is a float tensor (N, 4) of finite numbers (any format)."""
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} should be a torch.Tensor (N, 4), got {type(boxes).__name__}; "
                        "convert with torch.as_tensor(..., dtype=torch.float32)")
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        hint = f"pass one box as {name}[None], a (1, 4) tensor" if boxes.shape == (4,) else (
            "pass the boxes of one image, not a batch; for no boxes use torch.zeros(0, 4)")
        raise ValueError(f"{name} should have shape (N, 4), got {tuple(boxes.shape)}; {hint}")
    if not boxes.is_floating_point():
        raise ValueError(f"{name} should be a float tensor, got dtype {boxes.dtype}; convert with {name}.float()")
    finite = torch.isfinite(boxes).all(dim=1)
    if not finite.all():
        row = int((~finite).nonzero()[0])
        raise ValueError(f"{name}[{row}] = {boxes[row].tolist()} holds NaN or inf; a model that diverged or a "
                         "division by a zero width produced it: fix the source, or drop the row")


def check_boxes(boxes: torch.Tensor, image_size: tuple[int, int] | None = None, name: str = "boxes") -> None:
    """Raise one clear error unless ``boxes`` are valid xyxy boxes (N, 4), inside ``image_size`` if given.

    Checks, in order: a float tensor of shape (N, 4) without NaN, x1 <= x2 and y1 <= y2 (boxes of zero
    width are allowed), and 0 <= x1, x2 <= width, 0 <= y1, y2 <= height. A ``tv_tensors.BoundingBoxes``
    must be in XYXY format.
    """
    check_box_tensor(boxes, name)
    if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
        raise ValueError(f"{name} are BoundingBoxes in format {boxes.format.name}; convert them with "
                         "torchvision.transforms.v2.ConvertBoundingBoxFormat('XYXY')")
    flipped = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if flipped.any():
        row = int(flipped.nonzero()[0])
        fix = ("these look like (x, y, width, height): convert with box_convert(boxes, 'xywh', 'xyxy'), or "
               "'cxcywh' for (centre x, centre y, width, height)") if (boxes[:, 2:] >= 0).all() else (
               "put the corners in the order (x1, y1, x2, y2), the top-left one first")
        raise ValueError(f"{name}[{row}] = {boxes[row].tolist()} has x2 < x1 or y2 < y1; {fix}")
    if image_size is not None:
        height, width = check_image_size(image_size)
        limits = boxes.new_tensor([width, height, width, height])
        outside = (boxes < 0).any(dim=1) | (boxes > limits).any(dim=1)
        if outside.any():
            row = int(outside.nonzero()[0])
            raise ValueError(f"{name}[{row}] = {boxes[row].tolist()} reaches outside the image of (height, width) "
                             f"= ({height}, {width}); clip the boxes with clip_boxes_to_image(boxes, image_size), "
                             "or check that x goes with the width and y with the height")


def check_box_labels(labels: torch.Tensor, boxes: torch.Tensor, name: str = "labels",
                     num_classes: int | None = None) -> None:
    """Raise a ValueError unless ``labels`` is an integer tensor (N,), one class per box, with values in
    1..num_classes - 1 when ``num_classes`` (background included, as ``ShapesScenes.num_classes``) is given."""
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.shape != boxes.shape[:1]:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name} should be an integer tensor ({boxes.shape[0]},), one class per box, got {shape}; "
                         "for class scores (N, K) take scores.argmax(dim=1)")
    if num_classes is not None and ((labels < 1) | (labels >= num_classes)).any():
        raise ValueError(f"{name} should be in 1..{num_classes - 1} (0 is the background), got values "
                         f"{labels.unique().tolist()}; pass num_classes counting the background, or drop "
                         "background detections (label 0)")


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert boxes (N, 4) between 'xyxy', 'xywh' and 'cxcywh' (``torchvision.ops.box_convert``)."""
    for fmt in (in_fmt, out_fmt):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"unknown box format {fmt!r}; use one of {BOX_FORMATS}")
    if in_fmt == "xyxy":
        check_boxes(boxes)
    else:
        check_box_tensor(boxes)
    return ops.box_convert(boxes, in_fmt, out_fmt)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N,) areas (x2 - x1) * (y2 - y1) of xyxy boxes (``torchvision.ops.box_area``)."""
    check_boxes(boxes)
    return ops.box_area(boxes)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """(N, M) intersection over union of every pair of xyxy boxes (``torchvision.ops.box_iou``).

    IoU = area(A ∩ B) / (area(A) + area(B) - area(A ∩ B)); 0 for boxes that do not overlap.
    """
    check_boxes(boxes1, name="boxes1")
    check_boxes(boxes2, name="boxes2")
    return ops.box_iou(boxes1, boxes2)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """(N, M) generalized IoU, IoU - |C minus (A ∪ B)| / |C| with C the smallest box enclosing A and B
    (Rezatofighi et al. 2019; ``torchvision.ops.generalized_box_iou``). In [-1, 1], and still informative
    when the boxes do not overlap, which makes 1 - GIoU a box regression loss."""
    check_boxes(boxes1, name="boxes1")
    check_boxes(boxes2, name="boxes2")
    return ops.generalized_box_iou(boxes1, boxes2)


def clip_boxes_to_image(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Clip xyxy boxes to an image of (height, width) (``torchvision.ops.clip_boxes_to_image``)."""
    check_boxes(boxes)
    return ops.clip_boxes_to_image(boxes, check_image_size(image_size))


def remove_small_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of the boxes whose width and height are both at least ``min_size``
    (``torchvision.ops.remove_small_boxes``); index the labels and scores with them too."""
    check_boxes(boxes)
    return ops.remove_small_boxes(boxes, min_size)
