"""Chapter 00 exercise: boxes_from_masks, checked against ``torchvision.ops.masks_to_boxes``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.ops import masks_to_boxes

from cvcourse.exercises import ExerciseFailed, call_answer, checker


def boxes_from_masks_cases() -> list[tuple[str, torch.Tensor]]:
    """Deterministic (description, masks (N, H, W) bool) cases; every mask has at least one pixel set."""
    single_pixels = torch.zeros(3, 5, 7, dtype=torch.bool)
    single_pixels[0, 0, 0] = single_pixels[1, 4, 6] = single_pixels[2, 1, 3] = True
    borders = torch.zeros(2, 6, 9, dtype=torch.bool)
    borders[0] = True
    borders[1, 0, 4] = borders[1, 5, 1] = borders[1, 2, 0] = borders[1, 3, 8] = True
    rectangles = torch.zeros(2, 4, 11, dtype=torch.bool)
    rectangles[0, 1:3, 2:10] = True
    rectangles[1, :, 5] = True
    generator = torch.Generator().manual_seed(0)
    several = torch.rand(6, 16, 12, generator=generator) < 0.05
    rows = torch.randint(0, 16, (6,), generator=generator)
    cols = torch.randint(0, 12, (6,), generator=generator)
    several[torch.arange(6), rows, cols] = True
    return [
        ("single-pixel masks", single_pixels),
        ("masks touching every border", borders),
        ("masks on a non-square image", rectangles),
        ("several random masks at once", several),
    ]


def boxes_from_masks_hint(boxes: torch.Tensor, expected: torch.Tensor) -> str:
    """Name the common mistake that turns ``expected`` into ``boxes``, or give a general hint."""
    x1, y1, x2, y2 = expected.unbind(dim=1)
    width, height = x2 - x1, y2 - y1
    mistakes = [
        (
            [expected + torch.tensor([0.0, 0.0, 1.0, 1.0])],
            (
                "x2 and y2 are one too large: they are the largest column and row index that is set, "
                "not one past it"
            ),
        ),
        (
            [expected[:, [1, 0, 3, 2]]],
            "x and y are swapped: x is the column index (last dimension, W), y the row index (dimension H)",
        ),
        (
            [torch.stack([x1, y1, width, height], dim=1), torch.stack([x1, y1, width + 1, height + 1], dim=1)],
            "these look like (x, y, width, height): return the corners [x1, y1, x2, y2] instead",
        ),
    ]
    for wrong_answers, hint in mistakes:
        if any(torch.equal(boxes, wrong) for wrong in wrong_answers):
            return hint
    return (
        "for each mask, find the columns and the rows that contain a True pixel "
        "(mask.any(dim=0), mask.any(dim=1), torch.where) and take their smallest and largest index"
    )


@checker("boxes_from_masks")
def check_boxes_from_masks(answer: Callable[[torch.Tensor], torch.Tensor]) -> str:
    """Compare with ``torchvision.ops.masks_to_boxes``: XYXY float boxes, x2/y2 inclusive."""
    cases = boxes_from_masks_cases()
    for case, masks in cases:
        where = f"{case} (masks of shape {tuple(masks.shape)})"
        boxes = call_answer("boxes_from_masks", answer, where, masks.clone())
        expected = masks_to_boxes(masks)
        if not isinstance(boxes, torch.Tensor):
            raise ExerciseFailed(
                f"boxes_from_masks should return a torch.Tensor, got {type(boxes).__name__}; "
                "build it with torch.tensor(...) or torch.stack(...)"
            )
        if boxes.shape != expected.shape:
            raise ExerciseFailed(
                f"boxes_from_masks should return shape {tuple(expected.shape)} for {where}, "
                f"got {tuple(boxes.shape)}; return one row [x1, y1, x2, y2] per mask"
            )
        if not boxes.is_floating_point():
            raise ExerciseFailed(
                f"boxes_from_masks should return a float tensor like torchvision.ops.masks_to_boxes, "
                f"got dtype {boxes.dtype}; convert the result with .float()"
            )
        boxes = boxes.detach().cpu().float()
        if not torch.equal(boxes, expected):
            wrong_rows = (boxes != expected).any(dim=1).nonzero().flatten().tolist()
            raise ExerciseFailed(
                f"boxes {wrong_rows} of {len(masks)} are wrong for {where}: "
                f"{boxes_from_masks_hint(boxes, expected)}"
            )
    return f"all {len(cases)} cases match torchvision.ops.masks_to_boxes"
