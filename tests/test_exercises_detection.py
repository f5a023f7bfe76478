"""The detection exercises: each accepts correct answers and names realistic mistakes."""

import pytest
import torch
from torchvision import ops

from cvcourse import exercises
from cvcourse.detection import average_precision
from cvcourse.exercises import ExerciseFailed
from cvcourse.exercises import detection as det_exercises


def test_the_three_checkers_are_registered():
    assert {"box_iou", "nms", "average_precision"} <= set(exercises.CHECKERS)


# ---------------------------------------------------------------------------------------------
# box_iou


def box_iou_by_hand(boxes1, boxes2):
    """A correct answer written the way a student would."""
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).prod(dim=1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2]).prod(dim=1)
    return intersection / (area1[:, None] + area2[None, :] - intersection)


def box_iou_with_plus_one(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = (bottom_right - top_left + 1).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2:] - boxes1[:, :2] + 1).prod(dim=1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2] + 1).prod(dim=1)
    return intersection / (area1[:, None] + area2[None, :] - intersection)


def box_iou_without_clamp(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = (bottom_right - top_left).prod(dim=2)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).prod(dim=1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2]).prod(dim=1)
    return intersection / (area1[:, None] + area2[None, :] - intersection)


def box_iou_union_as_sum(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).prod(dim=1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2]).prod(dim=1)
    return intersection / (area1[:, None] + area2[None, :])


def box_iou_in_a_loop(boxes1, boxes2):
    return torch.tensor([[box_iou_by_hand(a[None], b[None]).item() for b in boxes2] for a in boxes1])


def test_box_iou_accepts_torchvision_and_a_hand_written_solution(capsys):
    assert exercises.check("box_iou", ops.box_iou)
    assert exercises.check("box_iou", box_iou_by_hand)
    assert capsys.readouterr().out.splitlines() == ["✓ box_iou: all 3 cases match torchvision.ops.box_iou"] * 2


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (box_iou_with_plus_one, r"disjoint boxes \(N=3, M=4\): the '\+1' belongs to the old inclusive-pixel"),
        (box_iou_without_clamp, r"boxes that do not overlap get a negative width .* clamp both at 0"),
        (box_iou_union_as_sum, r"the union counts the intersection twice: it is area1 \+ area2 - intersection"),
        (lambda a, b: box_iou_by_hand(b, a), r"got \(4, 3\); rows should follow boxes1 and columns boxes2"),
        (box_iou_in_a_loop, r"no boxes on one side .* got \(0,\); without boxes the result is still \(N, M\)"),
        (lambda a, b: box_iou_by_hand(a, b) * 0.9, r"take the intersection's corners with torch.maximum"),
        (lambda a, b: "IoU", r"box_iou should return a tensor \(N, M\), got str"),
    ],
)
def test_box_iou_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("box_iou", wrong_answer)


def test_box_iou_cases_include_disjoint_boxes_where_the_mistakes_differ():
    _, boxes1, boxes2 = det_exercises.box_iou_cases()[0]
    right = ops.box_iou(boxes1, boxes2)
    assert torch.equal(det_exercises.box_iou_variant(boxes1, boxes2), right)
    assert (right == 0).sum() >= 2 and (right == 1).any()
    for switches in ({"plus_one": True}, {"clamp": False}, {"subtract_overlap": False}):
        assert not torch.allclose(det_exercises.box_iou_variant(boxes1, boxes2, **switches), right, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# nms


def nms_by_hand(boxes, scores, iou_threshold):
    """A correct answer with a Python loop over the boxes by decreasing score."""
    order = scores.argsort(descending=True).tolist()
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [i for i in order if box_iou_by_hand(boxes[best][None], boxes[i][None]).item() <= iou_threshold]
    return torch.tensor(keep, dtype=torch.int64)


def nms_with(**switches):
    return lambda boxes, scores, t: torch.tensor(det_exercises.nms_variant(boxes, scores, t, **switches))


def nms_as_mask(boxes, scores, iou_threshold):
    mask = torch.zeros(len(boxes), dtype=torch.bool)
    mask[ops.nms(boxes, scores, iou_threshold)] = True
    return mask


def test_nms_accepts_torchvision_and_a_hand_written_solution(capsys):
    assert exercises.check("nms", ops.nms)
    assert exercises.check("nms", nms_by_hand)
    assert exercises.check("nms", lambda b, s, t: nms_by_hand(b, s, t).tolist())  # a list of ints is fine too
    assert capsys.readouterr().out.splitlines() == ["✓ nms: all 4 cases match torchvision.ops.nms"] * 3


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (nms_with(sort_by_score=False), r"in a row, not listed by score: visit the boxes by decreasing score"),
        (nms_with(suppress_equal=True), r"exactly the threshold 0.5: a box is suppressed only when its IoU is \*above"),
        (nms_with(suppressed_suppress=True), r"a suppressed box still suppresses others here"),
        (nms_as_mask, r"nms returned a bool mask .* return the indices of the kept boxes"),
        (lambda b, s, t: nms_as_mask(b, s, t).long(), r"this looks like a mask of kept boxes; return their indices"),
        (lambda b, s, t: ops.nms(b, s, t).sort().values, r"40 random boxes: the right boxes, in the wrong order"),
        (lambda b, s, t: ops.nms(b, s, t)[1:], r"keep the best remaining box, drop the remaining boxes"),
    ],
)
def test_nms_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("nms", wrong_answer)


def test_nms_cases_tell_the_mistakes_apart():
    for case, boxes, scores, threshold in det_exercises.nms_cases()[:2]:
        right = ops.nms(boxes, scores, threshold).tolist()
        assert det_exercises.nms_variant(boxes, scores, threshold) == right, case
    _, boxes, scores, threshold = det_exercises.nms_cases()[0]
    wrong = [det_exercises.nms_variant(boxes, scores, threshold, **switches)
             for switches in ({"sort_by_score": False}, {"suppressed_suppress": True})]
    assert len({tuple(kept) for kept in wrong + [ops.nms(boxes, scores, threshold).tolist()]}) == 3


# ---------------------------------------------------------------------------------------------
# average_precision


def average_precision_by_hand(scores, is_true_positive, num_ground_truth):
    """A correct answer with Python loops: envelope, then 101 recall levels."""
    order = scores.argsort(descending=True)
    hits = is_true_positive[order].tolist()
    precision, recall, found = [], [], 0
    for rank, hit in enumerate(hits, start=1):
        found += hit
        precision.append(found / rank)
        recall.append(found / num_ground_truth)
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    levels = torch.linspace(0, 1, 101).tolist()
    return sum(next((p for p, r in zip(precision, recall) if r >= level), 0.0) for level in levels) / 101


def mistake(index):
    return lambda scores, hits, n: det_exercises.average_precision_mistakes(scores, hits, n)[index][0]


def test_average_precision_accepts_the_course_function_and_a_hand_written_solution(capsys):
    assert exercises.check("average_precision", average_precision)
    assert exercises.check("average_precision", average_precision_by_hand)
    assert capsys.readouterr().out.splitlines() == [
        "✓ average_precision: all 5 cases match cvcourse.detection.average_precision"] * 2


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (mistake(0), r"9 objects: this reads the raw precision; take its envelope first"),
        (mistake(1), r"this is Pascal VOC's 11-point AP"),
        (mistake(2), r"recall divides the true positives by the number of ground-truth objects, not of detections"),
        (mistake(3), r"area under the raw curve at every detection \(sklearn's average_precision_score\)"),
        (mistake(4), r"all-point AP of Pascal VOC 2010"),
        (mistake(5), r"not sorted by score: sort the detections by decreasing score first"),
        (lambda s, h, n: float("nan") if len(s) == 0 else average_precision(s, h, n),
         r"no detections, 3 objects: with no detections nothing is found, so AP is 0.0"),
        (lambda s, h, n: 0.5, r"sort by score, cumulate TP and FP"),
        (lambda s, h, n: torch.ones(2), r"should return the AP as one number, got Tensor"),
    ],
)
def test_average_precision_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("average_precision", wrong_answer)


def test_average_precision_cases_tell_the_mistakes_apart_and_never_print_the_answer():
    _, scores, hits, num_ground_truth = det_exercises.average_precision_cases()[0]
    right = average_precision(scores, hits, num_ground_truth)
    values = [value for value, _ in det_exercises.average_precision_mistakes(scores, hits, num_ground_truth)]
    assert all(abs(value - right) > 1e-3 for value in values[:5])  # the unsorted mistake shows on the next case
    assert all(int(hits.sum()) <= n for _, _, hits, n in det_exercises.average_precision_cases())
    with pytest.raises(ExerciseFailed) as failure:
        exercises.check("average_precision", lambda s, h, n: 0.5)
    assert f"{right:.2f}" not in str(failure.value)
