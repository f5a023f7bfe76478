"""NMS from scratch against torchvision.ops.nms and batched_nms on many random cases, plus edge cases."""

import pytest
import torch
from torchvision import ops

from cvcourse.detection import batched_nms, nms


def random_problem(seed, count=None):
    """Clustered random boxes (many overlaps) with distinct scores."""
    generator = torch.Generator().manual_seed(seed)
    count = count if count is not None else int(torch.randint(1, 120, (), generator=generator))
    centres = torch.rand(max(count // 6, 1), 2, generator=generator) * 200
    picked = centres[torch.randint(len(centres), (count,), generator=generator)]
    xy = picked + torch.randn(count, 2, generator=generator) * 8
    size = 10 + torch.rand(count, 2, generator=generator) * 30
    boxes = torch.cat([xy, xy + size], dim=1).clamp(min=0)
    scores = torch.randperm(count, generator=generator).float() / count  # distinct: no ties to break
    return boxes, scores, generator


@pytest.mark.parametrize("iou_threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_torchvision_on_random_cases(iou_threshold):
    suppressed = 0
    for seed in range(20):
        boxes, scores, _ = random_problem(seed)
        kept = nms(boxes, scores, iou_threshold)
        assert kept.dtype == torch.int64
        assert torch.equal(kept, ops.nms(boxes, scores, iou_threshold)), seed
        suppressed += len(boxes) - len(kept)
    assert (suppressed > 0) == (iou_threshold < 1.0)  # the cases do exercise the suppression


def test_batched_nms_matches_torchvision_on_random_cases():
    for seed in range(40):
        boxes, scores, generator = random_problem(seed)
        labels = torch.randint(0, 4, (len(boxes),), generator=generator)
        threshold = 0.2 + 0.6 * torch.rand((), generator=generator).item()
        assert torch.equal(batched_nms(boxes, scores, labels, threshold),
                           ops.batched_nms(boxes, scores, labels, threshold)), seed


def test_batched_nms_never_suppresses_across_classes():
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    boxes, scores = box.repeat(3, 1), torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([1, 2, 1]), 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.5).tolist() == [0]


def test_kept_indices_are_sorted_by_score_and_deterministic():
    boxes, scores, _ = random_problem(3, count=80)
    kept = nms(boxes, scores, 0.4)
    assert torch.all(scores[kept][:-1] > scores[kept][1:])
    assert torch.equal(kept, nms(boxes.clone(), scores.clone(), 0.4))


def test_an_iou_equal_to_the_threshold_is_kept():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]])  # IoU exactly 0.5
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, 0.5).tolist() == ops.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.49).tolist() == [0]


def test_zero_area_boxes_are_kept_as_torchvision_keeps_them():
    """Two zero-area boxes have IoU 0 / 0: undefined, so neither suppresses the other (torchvision's rule)."""
    boxes = torch.tensor([[5.0, 5.0, 5.0, 5.0], [50.0, 50.0, 50.0, 60.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 10.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == ops.nms(boxes, scores, 0.5).tolist() == [0, 1, 2, 3]
    labels = torch.tensor([1, 1, 1, 2])
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == ops.batched_nms(boxes, scores, labels, 0.5).tolist()


def test_no_boxes_give_an_empty_index_tensor():
    for kept in (nms(torch.zeros(0, 4), torch.zeros(0), 0.5),
                 batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)):
        assert kept.shape == (0,) and kept.dtype == torch.int64


def test_bad_input_is_named():
    boxes, scores, _ = random_problem(0, count=4)
    with pytest.raises(ValueError, match=r"scores should be a float tensor \(4,\), one per box, got \(4, 3\)"):
        nms(boxes, torch.rand(4, 3), 0.5)
    with pytest.raises(ValueError, match=r"iou_threshold should be a number in \[0, 1\], got 50"):
        nms(boxes, scores, 50)
    with pytest.raises(ValueError, match=r"boxes\[0\] .* has x2 < x1 or y2 < y1"):
        nms(boxes[:, [2, 3, 0, 1]], scores, 0.5)
    with pytest.raises(ValueError, match=r"labels should be an integer tensor \(4,\)"):
        batched_nms(boxes, scores, torch.rand(4), 0.5)
