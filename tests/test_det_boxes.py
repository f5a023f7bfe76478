"""Box utilities: the wrappers agree with torchvision.ops, and check_boxes names each kind of bad input."""

import pytest
import torch
from torchvision import ops, tv_tensors

from cvcourse.detection import (
    box_area,
    box_convert,
    box_iou,
    check_box_labels,
    check_boxes,
    clip_boxes_to_image,
    generalized_box_iou,
    remove_small_boxes,
)


def random_boxes(count, seed=0, image_size=100.0):
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, generator=generator) * image_size
    return torch.cat([corners, corners + 1 + torch.rand(count, 2, generator=generator) * 40], dim=1)


def test_box_convert_round_trips_and_matches_torchvision():
    boxes = random_boxes(20)
    for fmt in ("xywh", "cxcywh"):
        converted = box_convert(boxes, "xyxy", fmt)
        assert torch.equal(converted, ops.box_convert(boxes, "xyxy", fmt))
        assert torch.allclose(box_convert(converted, fmt, "xyxy"), boxes, atol=1e-5)
    xywh = box_convert(torch.tensor([[1.0, 2.0, 4.0, 8.0]]), "xyxy", "xywh")
    assert torch.equal(xywh, torch.tensor([[1.0, 2.0, 3.0, 6.0]]))


def test_box_convert_rejects_an_unknown_format():
    with pytest.raises(ValueError, match=r"unknown box format 'xyhw'; use one of \('xyxy', 'xywh', 'cxcywh'\)"):
        box_convert(random_boxes(2), "xyhw", "xyxy")


def test_wrappers_match_torchvision_ops():
    boxes1, boxes2 = random_boxes(7, seed=1), random_boxes(5, seed=2)
    assert torch.equal(box_area(boxes1), ops.box_area(boxes1))
    assert torch.equal(box_iou(boxes1, boxes2), ops.box_iou(boxes1, boxes2))
    assert torch.equal(generalized_box_iou(boxes1, boxes2), ops.generalized_box_iou(boxes1, boxes2))
    assert torch.equal(clip_boxes_to_image(boxes1, (60, 80)), ops.clip_boxes_to_image(boxes1, (60, 80)))
    assert torch.equal(remove_small_boxes(boxes1, 20.0), ops.remove_small_boxes(boxes1, 20.0))
    assert box_iou(boxes1, boxes2).shape == (7, 5)


def test_iou_uses_pixel_edges_without_plus_one():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [10.0, 0.0, 20.0, 10.0]])  # half overlap, touching edges
    assert torch.allclose(box_iou(a, b), torch.tensor([[50 / 150, 0.0]]))


def test_empty_box_sets_are_valid():
    empty = torch.zeros(0, 4)
    check_boxes(empty, image_size=(10, 10))
    assert box_iou(empty, random_boxes(3)).shape == (0, 3)
    assert box_area(empty).shape == (0,)
    assert clip_boxes_to_image(empty, (5, 5)).shape == (0, 4)


def test_check_boxes_accepts_boxes_touching_the_image_border_and_zero_width_boxes():
    check_boxes(torch.tensor([[0.0, 0.0, 64.0, 32.0], [3.0, 3.0, 3.0, 9.0]]), image_size=(32, 64))
    check_boxes(tv_tensors.BoundingBoxes([[1, 2, 5, 6]], format="XYXY", canvas_size=(8, 8), dtype=torch.float32))


@pytest.mark.parametrize(
    "boxes, message",
    [
        (torch.tensor([1.0, 2.0, 3.0, 4.0]), r"shape \(N, 4\), got \(4,\); pass one box as boxes\[None\]"),
        (torch.zeros(2, 3, 4), r"shape \(N, 4\), got \(2, 3, 4\); pass the boxes of one image, not a batch"),
        (torch.tensor([[1, 2, 3, 4]]), r"float tensor, got dtype torch.int64; convert with boxes.float\(\)"),
        (torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, float("nan"), 1.0, 1.0]]), r"boxes\[1\] = .* holds NaN or inf"),
        ([[0.0, 0.0, 1.0, 1.0]], r"should be a torch.Tensor \(N, 4\), got list"),
    ],
)
def test_check_boxes_names_malformed_tensors(boxes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_boxes(boxes)


def test_check_boxes_suggests_box_convert_for_boxes_that_look_like_xywh():
    xywh = torch.tensor([[2.0, 2.0, 10.0, 10.0], [20.0, 30.0, 5.0, 8.0]])
    with pytest.raises(ValueError, match=r"boxes\[1\] = \[20.0, 30.0, 5.0, 8.0\] has x2 < x1 or y2 < y1; these look "
                                         r"like \(x, y, width, height\): convert with box_convert\(boxes, 'xywh'"):
        check_boxes(xywh)


def test_check_boxes_names_swapped_corners():
    with pytest.raises(ValueError, match=r"boxes\[0\] .* has x2 < x1 .* put the corners in the order \(x1, y1, x2, y2"):
        check_boxes(torch.tensor([[5.0, -1.0, 2.0, -3.0]]))


def test_check_boxes_names_a_box_outside_the_image_and_offers_clipping():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 5.0, 70.0, 20.0]])
    with pytest.raises(ValueError, match=r"boxes\[1\] = .* reaches outside the image of \(height, width\) = "
                                         r"\(32, 64\); clip the boxes with clip_boxes_to_image"):
        check_boxes(boxes, image_size=(32, 64))
    check_boxes(clip_boxes_to_image(boxes, (32, 64)), image_size=(32, 64))


def test_check_boxes_rejects_a_bad_image_size_and_a_non_xyxy_bounding_boxes():
    with pytest.raises(ValueError, match=r"image_size should be \(height, width\).*image.shape\[-2:\]"):
        check_boxes(random_boxes(2), image_size=(3, 32, 32))
    xywh = tv_tensors.BoundingBoxes([[1, 2, 3, 4]], format="XYWH", canvas_size=(8, 8), dtype=torch.float32)
    with pytest.raises(ValueError, match=r"BoundingBoxes in format XYWH; convert them with .*ConvertBoundingBoxFormat"):
        check_boxes(xywh)


def test_wrappers_check_their_input():
    with pytest.raises(ValueError, match=r"boxes2\[0\] .* has x2 < x1"):
        box_iou(random_boxes(2), torch.tensor([[5.0, 5.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"boxes1 should have shape \(N, 4\)"):
        generalized_box_iou(torch.zeros(4), random_boxes(2))


def test_check_box_labels_names_labels_outside_the_class_range():
    boxes = random_boxes(3)
    check_box_labels(torch.tensor([1, 4, 2]), boxes, num_classes=5)
    with pytest.raises(ValueError, match=r"labels should be in 1..4 \(0 is the background\), got values \[0, 1, 5\]"):
        check_box_labels(torch.tensor([0, 1, 5]), boxes, num_classes=5)
    with pytest.raises(ValueError, match=r"integer tensor \(3,\), one class per box, got \(3, 4\).*argmax"):
        check_box_labels(torch.rand(3, 4), boxes)
