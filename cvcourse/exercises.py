"""Self-checking exercises.

In a chapter notebook the reference solution of an exercise sits in a code cell tagged ``solution``
and the next code cell checks it::

    exercises.check("boxes_from_masks", boxes_from_masks)

A checker accepts a correct answer and rejects wrong ones with a hint, never with the answer.
``cvcourse.student`` writes the students' copies, where each solution cell becomes a stub.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchvision.ops import masks_to_boxes

Checker = Callable[[Any], str]
CHECKERS: dict[str, Checker] = {}


class ExerciseFailed(AssertionError):
    """A wrong answer: the message says what is wrong and gives a hint, never the answer."""


def checker(name: str) -> Callable[[Checker], Checker]:
    """Register ``fn(answer) -> success message`` (raising ExerciseFailed) as the checker of ``name``."""

    def register(fn: Checker) -> Checker:
        if name in CHECKERS:
            raise ValueError(f"exercise {name!r} already has a checker; give the new exercise another name")
        CHECKERS[name] = fn
        return fn

    return register


def check(name: str, answer: Any) -> bool:
    """Check a student's answer to exercise ``name``: print "✓ name: message" and return True, or raise."""
    if name not in CHECKERS:
        raise KeyError(f"no exercise named {name!r}; known exercises: {sorted(CHECKERS)}")
    try:
        message = CHECKERS[name](answer)
    except NotImplementedError:
        raise ExerciseFailed(
            f"{name} is not done yet: write the function in the cell above, then run this cell again"
        ) from None
    print(f"✓ {name}: {message}")
    return True


def call_answer(name: str, answer: Any, case: str, *args: Any) -> Any:
    """Call the student's function on one case; a crash becomes ExerciseFailed naming the case."""
    if not callable(answer):
        raise ExerciseFailed(
            f"expected the function {name} itself, got a {type(answer).__name__}; "
            f"pass the function without calling it: check({name!r}, {name})"
        )
    try:
        return answer(*args)
    except NotImplementedError:
        raise
    except Exception as error:
        raise ExerciseFailed(f"{name} raised {type(error).__name__} on {case}: {error}") from error


# ---------------------------------------------------------------------------------------------
# Chapter 00: boxes_from_masks


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
            "x2 and y2 are one too large: they are the largest column and row index that is set, "
            "not one past it",
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
