"""The Hungarian matching of predicted boxes to ground truth and the set loss: brute force, known answers, gradients,
permutation invariance, empty images and bad input."""

import itertools

import pytest
import torch
from torchvision import ops

from cvcourse.detection.set_matching import SetLossWeights, hungarian_match, matching_cost, normalised, set_loss

SIZE = (40, 60)


def random_boxes(count, generator):
    corners = torch.rand(count, 2, generator=generator) * torch.tensor([40.0, 25.0])
    sides = 4 + torch.rand(count, 2, generator=generator) * 15
    return torch.cat([corners, corners + sides], dim=1)


@pytest.mark.parametrize("seed", range(6))
def test_the_matching_has_the_least_total_cost_of_all_pairings(seed):
    generator = torch.Generator().manual_seed(seed)
    cost = torch.rand(5, 3, generator=generator)
    predicted, truth = hungarian_match(cost)
    assert torch.equal(truth, torch.arange(3)) and len(set(predicted.tolist())) == 3
    best = min(sum(cost[i, j] for j, i in enumerate(rows)) for rows in itertools.permutations(range(5), 3))
    assert cost[predicted, truth].sum() == pytest.approx(float(best))


def test_the_cost_is_the_weighted_focal_l1_and_giou_terms_pair_by_pair():
    generator = torch.Generator().manual_seed(0)
    logits, boxes = torch.randn(4, 3, generator=generator), random_boxes(4, generator)
    gt_labels, gt_boxes = torch.tensor([2, 3]), random_boxes(2, generator)
    weights = SetLossWeights(classification=1.5, l1=4.0, giou=3.0)
    cost = matching_cost(logits, boxes, gt_labels, gt_boxes, SIZE, weights)
    scale = torch.tensor([60.0, 40.0, 60.0, 40.0])
    for i, j in itertools.product(range(4), range(2)):
        p = logits[i, gt_labels[j] - 1].sigmoid()
        focal = 0.25 * (1 - p) ** 2 * -torch.log(p) - 0.75 * p**2 * -torch.log(1 - p)
        l1 = (boxes[i] / scale - gt_boxes[j] / scale).abs().sum()
        giou = ops.generalized_box_iou(boxes[i:i + 1], gt_boxes[j:j + 1])[0, 0]
        assert cost[i, j] == pytest.approx(float(1.5 * focal + 4.0 * l1 - 3.0 * giou), rel=1e-4, abs=1e-5)


def test_a_perfect_prediction_has_almost_no_loss_and_a_wrong_one_a_large_one():
    generator = torch.Generator().manual_seed(1)
    gt_labels, gt_boxes = torch.tensor([1, 2]), random_boxes(2, generator)
    logits = torch.full((3, 2), -12.0)
    logits[0, 1], logits[2, 0] = 12.0, 12.0  # prediction 0 says class 2, prediction 2 says class 1
    boxes = torch.stack([gt_boxes[1], torch.tensor([0.0, 0.0, 5.0, 5.0]), gt_boxes[0]])
    perfect = set_loss(logits, boxes, gt_labels, gt_boxes, SIZE)
    assert perfect["loss"] < 1e-3
    swapped = set_loss(logits, boxes.flip(0), gt_labels, gt_boxes, SIZE)
    assert swapped["loss"] > 1.0


def test_the_loss_does_not_depend_on_the_order_of_the_predictions_and_has_gradients():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 3, generator=generator, requires_grad=True)
    boxes = random_boxes(6, generator).requires_grad_()
    gt_labels, gt_boxes = torch.tensor([1, 3, 3]), random_boxes(3, generator)
    loss = set_loss(logits, boxes, gt_labels, gt_boxes, SIZE)
    order = torch.randperm(6, generator=generator)
    shuffled = set_loss(logits[order], boxes[order], gt_labels, gt_boxes, SIZE)
    assert shuffled["loss"].item() == pytest.approx(loss["loss"].item(), rel=1e-6)
    loss["loss"].backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    matched = boxes.grad.abs().sum(dim=1) > 0
    assert int(matched.sum()) == 3  # only the three matched predictions learn a box
    assert set(loss) == {"classification", "l1", "giou", "loss"}


def test_an_image_without_objects_teaches_every_prediction_no_object():
    logits = torch.zeros(4, 2, requires_grad=True)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4, requires_grad=True)
    loss = set_loss(logits, boxes, torch.zeros(0, dtype=torch.long), torch.zeros(0, 4), SIZE)
    assert loss["l1"] == 0 and loss["giou"] == 0 and loss["classification"] > 0
    loss["loss"].backward()
    assert (logits.grad > 0).all()  # every logit is pushed down


def test_bad_input_is_named():
    generator = torch.Generator().manual_seed(3)
    gt_boxes = random_boxes(3, generator)
    with pytest.raises(ValueError, match="predict at least as many boxes as an image has objects"):
        set_loss(torch.zeros(2, 2), random_boxes(2, generator), torch.tensor([1, 1, 2]), gt_boxes, SIZE)
    with pytest.raises(ValueError, match=r"should be in 1\.\.2"):
        matching_cost(torch.zeros(4, 2), random_boxes(4, generator), torch.tensor([1, 3, 2]), gt_boxes, SIZE)
    with pytest.raises(ValueError, match="one image's predictions at a time"):
        matching_cost(torch.zeros(2, 4, 2), random_boxes(4, generator), torch.tensor([1, 1, 2]), gt_boxes, SIZE)
    with pytest.raises(ValueError, match=r"image_size should be \(height, width\)"):
        normalised(gt_boxes, (40,))
