"""Anchors, matching and the box coder against torchvision's detection internals; FCOS's assignment by hand."""

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from cvcourse.detection import (
    BACKGROUND,
    IGNORE,
    box_iou,
    decode,
    encode,
    fcos_targets,
    grid_centres,
    make_anchors,
    match_anchors,
)


def random_boxes(count, seed, image_size=128.0, smallest=4.0, largest=60.0):
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, generator=generator) * (image_size - largest)
    sizes = smallest + torch.rand(count, 2, generator=generator) * (largest - smallest)
    return torch.cat([corners, corners + sizes], dim=1)


def test_grid_centres_are_pixel_block_centres_in_row_major_order():
    centres = grid_centres((2, 3), stride=8)
    assert centres.shape == (6, 2)
    assert centres[:4].tolist() == [[4.0, 4.0], [12.0, 4.0], [20.0, 4.0], [4.0, 12.0]]


def test_anchors_have_the_requested_areas_and_aspect_ratios():
    anchors = make_anchors((3, 4), stride=16, sizes=(32.0, 64.0), aspect_ratios=(0.5, 1.0, 2.0))
    assert anchors.shape == (3 * 4 * 6, 4)
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    per_location = torch.stack([widths * heights, heights / widths], dim=1)[:6]
    expected = torch.tensor([[32.0**2, 0.5], [64.0**2, 0.5], [32.0**2, 1.0], [64.0**2, 1.0], [32.0**2, 2.0],
                             [64.0**2, 2.0]])
    assert torch.allclose(per_location, expected, rtol=1e-5)
    assert torch.allclose((anchors[:6, :2] + anchors[:6, 2:]) / 2, torch.tensor([8.0, 8.0]))


def test_anchors_match_torchvision_anchor_generator_shifted_to_pixel_centres():
    sizes, ratios, stride = (32, 64), (0.25, 1.0, 4.0), 16  # whole-pixel anchors: torchvision's rounding is exact
    generator = AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))
    images = ImageList(torch.zeros(1, 3, 64, 96), [(64, 96)])
    reference = generator(images, [torch.zeros(1, 8, 4, 6)])[0]
    ours = make_anchors((4, 6), stride, sizes, ratios)
    assert torch.allclose(ours, reference + stride / 2)


def test_make_anchors_rejects_empty_or_negative_sizes():
    with pytest.raises(ValueError, match=r"sizes and aspect_ratios should be non-empty lists of positive numbers"):
        make_anchors((2, 2), 8, sizes=(), aspect_ratios=(1.0,))
    with pytest.raises(ValueError, match=r"positive numbers, got \(32,\) and \(-1.0,\)"):
        make_anchors((2, 2), 8, sizes=(32,), aspect_ratios=(-1.0,))


@pytest.mark.parametrize("seed", range(10))
def test_match_anchors_matches_torchvision_matcher_with_low_quality_matches(seed):
    anchors = make_anchors((8, 8), stride=16, sizes=(24.0, 48.0), aspect_ratios=(0.5, 1.0, 2.0))
    gt_boxes = random_boxes(1 + seed % 6, seed)  # every box overlaps some anchor, as torchvision assumes
    matcher = Matcher(0.5, 0.4, allow_low_quality_matches=True)
    expected = matcher(box_iou(gt_boxes, anchors))
    matches = match_anchors(anchors, gt_boxes, fg_iou=0.5, bg_iou=0.4)
    assert torch.equal(matches, expected)
    assert set(matches.tolist()) <= {BACKGROUND, IGNORE, *range(len(gt_boxes))}


def test_every_box_gets_its_best_anchor_even_below_the_foreground_threshold():
    anchors = torch.tensor([[0.0, 0.0, 32.0, 32.0], [32.0, 0.0, 64.0, 32.0]])
    small = torch.tensor([[36.0, 4.0, 44.0, 12.0]])  # IoU 0.0625 with anchor 1, 0 with anchor 0
    assert match_anchors(anchors, small).tolist() == [BACKGROUND, 0]
    with_fg = torch.tensor([[0.0, 0.0, 30.0, 30.0], [40.0, 20.0, 50.0, 30.0]])
    assert match_anchors(anchors, with_fg, fg_iou=0.5, bg_iou=0.05).tolist() == [0, 1]


def test_match_anchors_marks_the_band_between_thresholds_as_ignore():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 4.5], [0.0, 0.0, 10.0, 2.0], [50, 50, 60, 60]])
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])  # IoUs 1.0, 0.45, 0.2, 0
    assert match_anchors(anchors, gt, fg_iou=0.5, bg_iou=0.4).tolist() == [0, IGNORE, BACKGROUND, BACKGROUND]


def test_match_anchors_handles_empty_images_and_boxes_far_from_every_anchor():
    anchors = make_anchors((2, 2), stride=8, sizes=(8.0,), aspect_ratios=(1.0,))
    assert match_anchors(anchors, torch.zeros(0, 4)).tolist() == [BACKGROUND] * 4
    far = torch.tensor([[100.0, 100.0, 110.0, 110.0]])  # torchvision would match all four anchors to it
    assert match_anchors(anchors, far).tolist() == [BACKGROUND] * 4
    with pytest.raises(ValueError, match=r"need 0 <= bg_iou <= fg_iou <= 1, got bg_iou=0.6, fg_iou=0.5"):
        match_anchors(anchors, far, fg_iou=0.5, bg_iou=0.6)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_box_coder_matches_torchvision_and_round_trips(weights):
    boxes, anchors = random_boxes(50, seed=1), random_boxes(50, seed=2)
    coder = BoxCoder(weights)
    deltas = encode(boxes, anchors, weights)
    assert torch.allclose(deltas, coder.encode_single(boxes, anchors), atol=1e-5)
    assert torch.allclose(decode(deltas, anchors, weights), coder.decode_single(deltas, anchors), atol=1e-4)
    assert torch.allclose(decode(deltas, anchors, weights), boxes, atol=1e-4)


def test_encode_follows_faster_rcnn_equation_2():
    anchor = torch.tensor([[0.0, 0.0, 10.0, 20.0]])  # centre (5, 10), size 10 x 20
    box = torch.tensor([[2.0, 4.0, 22.0, 14.0]])  # centre (12, 9), size 20 x 10
    expected = torch.tensor([[0.7, -0.05, math.log(2.0), math.log(0.5)]])
    assert torch.allclose(encode(box, anchor), expected)


def test_decode_clamps_huge_scales_so_boxes_stay_finite():
    anchors = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    boxes = decode(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), anchors)
    assert torch.isfinite(boxes).all()
    assert torch.allclose(boxes[0, 2] - boxes[0, 0], torch.tensor(1000.0))


def test_box_coder_names_bad_input():
    boxes = random_boxes(3, seed=0)
    with pytest.raises(ValueError, match=r"boxes and anchors should pair up, got shapes \(3, 4\) and \(2, 4\)"):
        encode(boxes, boxes[:2])
    with pytest.raises(ValueError, match=r"anchors should have positive widths and heights .* remove_small_boxes"):
        encode(boxes, torch.tensor([[0.0, 0.0, 0.0, 5.0]]).repeat(3, 1))
    with pytest.raises(ValueError, match=r"weights should be four positive numbers"):
        encode(boxes, boxes, weights=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"deltas should have shape \(N, 4\)"):
        decode(torch.zeros(3), boxes)


def fcos_by_hand(points, gt_boxes, size_range):
    """FCOS's rule in plain Python: inside, max distance in range, smallest area wins."""
    matches, targets = [], []
    for x, y in points.tolist():
        best, best_area, best_target = -1, math.inf, [0.0] * 4
        for index, (x1, y1, x2, y2) in enumerate(gt_boxes.tolist()):
            distances = [x - x1, y - y1, x2 - x, y2 - y]
            area = (x2 - x1) * (y2 - y1)
            if min(distances) > 0 and size_range[0] <= max(distances) <= size_range[1] and area < best_area:
                best, best_area, best_target = index, area, distances
        matches.append(best)
        targets.append(best_target)
    return torch.tensor(matches), torch.tensor(targets)


@pytest.mark.parametrize("size_range", [(0.0, math.inf), (0.0, 16.0), (16.0, 32.0)])
def test_fcos_targets_follow_the_rule_written_by_hand(size_range):
    points = grid_centres((16, 16), stride=8)
    gt_boxes = random_boxes(6, seed=3)
    matches, targets = fcos_targets(points, gt_boxes, size_range)
    expected_matches, expected_targets = fcos_by_hand(points, gt_boxes, size_range)
    assert torch.equal(matches, expected_matches)
    assert torch.allclose(targets, expected_targets)
    assert (matches >= 0).any() and (matches == BACKGROUND).any()


def test_fcos_gives_a_location_inside_two_boxes_to_the_smaller_one():
    points = torch.tensor([[10.0, 10.0], [50.0, 50.0]])
    gt_boxes = torch.tensor([[0.0, 0.0, 40.0, 40.0], [5.0, 5.0, 15.0, 15.0]])
    matches, targets = fcos_targets(points, gt_boxes)
    assert matches.tolist() == [1, BACKGROUND]
    assert targets.tolist() == [[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 0.0]]


def test_fcos_targets_handle_an_empty_image_and_name_bad_points():
    matches, targets = fcos_targets(grid_centres((2, 2), 8), torch.zeros(0, 4))
    assert matches.tolist() == [BACKGROUND] * 4 and targets.shape == (4, 4)
    with pytest.raises(ValueError, match=r"points should be \(P, 2\) centres \(x, y\), got \(4,\)"):
        fcos_targets(torch.zeros(4), torch.zeros(0, 4))
