"""Boxes as a diffusion model's signal (DiffusionDet): the mapping and its inverse, padding with random boxes, box
renewal, the forward process on boxes, and bad input."""

import pytest
import torch

from cvcourse.detection.box_diffusion import (MIN_SIDE, boxes_to_signal, padded_with_random_boxes, random_unit_boxes,
                                              renew_boxes, signal_to_boxes)
from cvcourse.diffusion.forward import q_sample
from cvcourse.diffusion.schedules import NoiseSchedule

SIZE = (40, 60)
BOXES = torch.tensor([[0.0, 0.0, 60.0, 40.0], [10.0, 5.0, 20.0, 25.0], [30.0, 20.0, 59.0, 39.0]])


def test_the_signal_is_normalised_cxcywh_in_minus_scale_to_scale_and_maps_back():
    x = boxes_to_signal(BOXES, SIZE, scale=2.0)
    assert torch.allclose(x[0], torch.tensor([0.0, 0.0, 2.0, 2.0]))  # the whole image: centred, full size
    assert torch.allclose(x[1], torch.tensor([(15 / 60 * 2 - 1) * 2, (15 / 40 * 2 - 1) * 2,
                                              (10 / 60 * 2 - 1) * 2, (20 / 40 * 2 - 1) * 2]))
    assert torch.allclose(signal_to_boxes(x, SIZE, scale=2.0), BOXES, atol=1e-4)
    assert torch.allclose(signal_to_boxes(boxes_to_signal(BOXES, SIZE, 1.0), SIZE, 1.0), BOXES, atol=1e-4)


def test_noisy_signals_become_boxes_inside_the_image():
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0)) * 5
    boxes = signal_to_boxes(x, SIZE)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 60).all() and (boxes[:, 3] <= 40).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def test_random_boxes_are_in_the_unit_square_with_a_positive_size_and_reproducible():
    boxes = random_unit_boxes(500, torch.Generator().manual_seed(1))
    assert boxes.shape == (500, 4) and (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2:] >= MIN_SIDE).all()
    assert abs(boxes.mean().item() - 0.5) < 0.02
    assert torch.equal(boxes, random_unit_boxes(500, torch.Generator().manual_seed(1)))


def test_ground_truth_comes_first_padded_to_n_and_an_empty_image_gets_random_boxes_only():
    padded = padded_with_random_boxes(BOXES, SIZE, 8, generator=torch.Generator().manual_seed(2))
    assert padded.shape == (8, 4) and torch.allclose(padded[:3], boxes_to_signal(BOXES, SIZE))
    assert (padded.abs() <= 2.0).all()
    empty = padded_with_random_boxes(torch.zeros(0, 4), SIZE, 5, generator=torch.Generator().manual_seed(2))
    assert empty.shape == (5, 4) and (empty.abs() <= 2.0).all()
    with pytest.raises(ValueError, match="3 ground-truth boxes do not fit in 2 boxes"):
        padded_with_random_boxes(BOXES, SIZE, 2)


def test_renewal_keeps_n_boxes_keeps_the_confident_ones_and_replaces_the_rest():
    x = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    scores = torch.tensor([0.9, 0.1, 0.5, 0.49, 0.7, 0.0])
    renewed, kept = renew_boxes(x, scores, 0.5, generator=torch.Generator().manual_seed(3))
    assert renewed.shape == x.shape and kept.tolist() == [True, False, True, False, True, False]
    assert torch.equal(renewed[kept], x[kept]) and not torch.isclose(renewed[~kept], x[~kept]).any()
    with pytest.raises(ValueError, match="one score per box"):
        renew_boxes(x, scores[:3], 0.5)


def test_the_forward_process_noises_boxes_like_images():
    schedule = NoiseSchedule.named("cosine", 1000)
    x0 = boxes_to_signal(BOXES, SIZE)
    assert torch.allclose(q_sample(schedule, x0, 0, torch.zeros_like(x0)), x0, atol=0.01)
    noise = torch.randn(3, 4, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(q_sample(schedule, x0, 999, noise), noise, atol=0.05)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="x2 < x1"):
        boxes_to_signal(torch.tensor([[10.0, 0.0, 5.0, 5.0]]), SIZE)
    with pytest.raises(ValueError, match="signal scale must be positive"):
        boxes_to_signal(BOXES, SIZE, scale=0.0)
    with pytest.raises(ValueError, match=r"signal \(N, 4\)"):
        signal_to_boxes(torch.zeros(2, 3, 4), SIZE)
