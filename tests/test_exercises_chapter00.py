"""The boxes_from_masks exercise of chapter 00: accepts correct answers, rejects realistic wrong ones."""

import pytest
import torch
from torchvision.ops import box_convert, masks_to_boxes

from cvcourse import exercises
from cvcourse.exercises import ExerciseFailed, chapter00


def boxes_by_hand(masks: torch.Tensor) -> torch.Tensor:
    """A correct answer written the way a student would."""
    boxes = []
    for mask in masks:
        rows = torch.where(mask.any(dim=1))[0]
        cols = torch.where(mask.any(dim=0))[0]
        boxes.append(torch.stack([cols.min(), rows.min(), cols.max(), rows.max()]))
    return torch.stack(boxes).float()


def test_boxes_from_masks_accepts_torchvision_and_a_hand_written_solution(capsys):
    assert exercises.check("boxes_from_masks", masks_to_boxes)
    assert exercises.check("boxes_from_masks", boxes_by_hand)
    assert capsys.readouterr().out.splitlines() == [
        "✓ boxes_from_masks: all 4 cases match torchvision.ops.masks_to_boxes"
    ] * 2


def test_boxes_from_masks_cases_are_deterministic_and_cover_the_edges():
    first, second = chapter00.boxes_from_masks_cases(), chapter00.boxes_from_masks_cases()
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(first, second))
    shapes = [masks.shape for _, masks in first]
    assert any(h != w for _, h, w in shapes) and any(n > 1 for n, _, _ in shapes)
    assert all(masks.flatten(1).any(dim=1).all() for _, masks in first)  # no empty mask
    boxes = torch.cat([masks_to_boxes(masks) for _, masks in first])
    assert (boxes[:, 0] == 0).any() and (boxes[:, 1] == 0).any()  # touches the left and top borders
    border_masks = dict(first)["masks touching every border"]
    assert torch.equal(masks_to_boxes(border_masks)[0], torch.tensor([0.0, 0.0, 8.0, 5.0]))


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (lambda masks: masks_to_boxes(masks) + torch.tensor([0, 0, 1, 1]), "x2 and y2 are one too large"),
        (lambda masks: masks_to_boxes(masks)[:, [1, 0, 3, 2]], "x and y are swapped"),
        (lambda masks: box_convert(masks_to_boxes(masks), "xyxy", "xywh"), r"like \(x, y, width, height\)"),
        (lambda masks: masks_to_boxes(masks).long(), "float tensor.*got dtype torch.int64.*.float()"),
        (lambda masks: masks_to_boxes(masks).T, r"shape \(3, 4\) for single-pixel masks.*got \(4, 3\)"),
        (lambda masks: masks_to_boxes(masks).tolist(), "should return a torch.Tensor, got list"),
        (
            lambda masks: masks_to_boxes(masks[:1]).expand(len(masks), 4),
            r"boxes \[1, 2\] of 3 are wrong.*smallest and largest",
        ),
    ],
)
def test_boxes_from_masks_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("boxes_from_masks", wrong_answer)


def test_a_failure_never_prints_the_expected_boxes():
    with pytest.raises(ExerciseFailed) as failure:
        exercises.check("boxes_from_masks", lambda masks: masks_to_boxes(masks) + 1)
    assert "tensor(" not in str(failure.value) and "6., 4." not in str(failure.value)


def test_a_crashing_answer_is_reported_with_the_case():
    def crashes_on_several_masks(masks):
        assert len(masks) < 6, "too many masks"
        return masks_to_boxes(masks)

    with pytest.raises(ExerciseFailed, match=r"raised AssertionError on several random masks .*too many masks"):
        exercises.check("boxes_from_masks", crashes_on_several_masks)
