"""Segmentation losses: hand-computed values on tiny tensors, limits, gradients and bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

from cvcourse.segmentation import bce_dice_loss, ce_dice_loss, dice_loss, weighted_bce

LOG3 = math.log(3.0)


def tiny_binary():
    """Two pixels with probabilities 0.5 and 0.75; the first is foreground."""
    return torch.tensor([0.0, LOG3]).reshape(1, 1, 1, 2), torch.tensor([[[1, 0]]])


def tiny_multiclass():
    """Two pixels, two classes: probabilities (0.5, 0.5) and (0.75, 0.25); classes 0 and 1."""
    return torch.tensor([[0.0, LOG3], [0.0, 0.0]]).reshape(1, 2, 1, 2), torch.tensor([[[0, 1]]])


def random_batch(channels: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, channels, 6, 7, generator=generator)
    target = torch.randint(0, max(channels, 2), (2, 6, 7), generator=generator)
    return logits, target


def test_binary_dice_loss_by_hand():
    logits, target = tiny_binary()
    # intersection 0.5, sum of probabilities 1.25, sum of the target 1
    assert dice_loss(logits, target).item() == pytest.approx(1 - (2 * 0.5 + 1) / (1.25 + 1 + 1))
    assert dice_loss(logits, target, eps=0.0).item() == pytest.approx(1 - 2 * 0.5 / 2.25)


def test_multiclass_dice_loss_by_hand():
    logits, target = tiny_multiclass()
    class0 = (2 * 0.5 + 1) / (1.25 + 1 + 1)  # probabilities 0.5, 0.75; target 1, 0
    class1 = (2 * 0.25 + 1) / (0.75 + 1 + 1)  # probabilities 0.5, 0.25; target 0, 1
    assert dice_loss(logits, target).item() == pytest.approx(1 - (class0 + class1) / 2)


def test_sums_with_cross_entropy_by_hand():
    logits, target = tiny_binary()
    bce = -(math.log(0.5) + math.log(0.25)) / 2  # -log p(foreground), -log p(background)
    assert bce_dice_loss(logits, target).item() == pytest.approx(bce + dice_loss(logits, target).item())
    logits, target = tiny_multiclass()
    ce = -(math.log(0.5) + math.log(0.25)) / 2
    assert ce_dice_loss(logits, target).item() == pytest.approx(ce + dice_loss(logits, target).item())


@pytest.mark.parametrize("channels", [1, 3])
def test_perfect_and_completely_wrong_predictions(channels):
    _, target = random_batch(channels)
    one_hot = F.one_hot(target, max(channels, 2)).permute(0, 3, 1, 2).float()
    sure = 30 * (2 * one_hot - 1)  # very confident logits
    perfect = sure[:, 1:] if channels == 1 else sure
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(-perfect, target).item() > 0.95


@pytest.mark.parametrize("loss", [dice_loss, bce_dice_loss, ce_dice_loss, weighted_bce])
def test_gradients_are_finite_and_non_zero(loss):
    logits, target = random_batch(3 if loss is ce_dice_loss else 1)
    logits.requires_grad_(True)
    extra = (torch.rand(target.shape) + 0.5,) if loss is weighted_bce else ()
    value = loss(logits, target, *extra)
    value.backward()
    assert value.shape == () and torch.isfinite(value)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_dice_loss_lies_in_zero_one_and_is_deterministic(channels):
    for seed in range(5):
        logits, target = random_batch(channels, seed)
        value = dice_loss(logits, target)
        assert 0 <= value.item() <= 1
        assert torch.equal(value, dice_loss(logits, target))


def test_weighted_bce_weights_each_pixel():
    logits, target = random_batch(1)
    plain = F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
    assert weighted_bce(logits, target, torch.ones(target.shape)).item() == pytest.approx(plain.item())
    assert weighted_bce(logits, target, torch.full(target.shape, 3.0)).item() == pytest.approx(3 * plain.item())
    tiny_logits, tiny_target = tiny_binary()
    only_first = torch.tensor([[[2.0, 0.0]]])  # the second pixel does not count
    assert weighted_bce(tiny_logits, tiny_target, only_first).item() == pytest.approx(2 * -math.log(0.5) / 2)


def test_bad_logits_and_targets_are_explained():
    logits, target = random_batch(1)
    with pytest.raises(ValueError, match=r"float logits \(B, C, H, W\), got \(1, 6, 7\).*logits\[None\]"):
        dice_loss(logits[0], target[0])
    with pytest.raises(ValueError, match=r"without a channel dimension, got shape \(2, 1, 6, 7\); pass target\[:, 0\]"):
        dice_loss(logits, target[:, None])
    with pytest.raises(ValueError, match=r"need a target of shape \(2, 6, 7\), got \(2, 6, 6\)"):
        bce_dice_loss(logits, target[..., :6])
    with pytest.raises(ValueError, match=r"target should hold class labels.*float32.*\.long\(\)"):
        dice_loss(logits, target.float())
    with pytest.raises(ValueError, match=r"target has labels outside \[0, 2\): values seen are \[0, 1, 2\]"):
        dice_loss(logits, torch.randint(0, 3, target.shape))
    with pytest.raises(ValueError, match=r"labels outside \[0, 3\)"):
        ce_dice_loss(random_batch(3)[0], torch.full(target.shape, 3))


def test_wrong_number_of_channels_points_to_the_other_loss():
    with pytest.raises(ValueError, match="got 3 channels; use ce_dice_loss"):
        bce_dice_loss(*random_batch(3))
    with pytest.raises(ValueError, match=r"C >= 2.*use bce_dice_loss"):
        ce_dice_loss(*random_batch(1))
    with pytest.raises(ValueError, match="weighted_bce is for binary logits"):
        logits, target = random_batch(3)
        weighted_bce(logits, target, torch.ones(target.shape))


def test_bad_weight_maps_are_explained():
    logits, target = random_batch(1)
    with pytest.raises(ValueError, match=r"target's shape \(2, 6, 7\), got \(6, 7\).*torch.stack"):
        weighted_bce(logits, target, torch.ones(6, 7))
    with pytest.raises(ValueError, match="non-negative float weights.*minimum -1.0"):
        weighted_bce(logits, target, -torch.ones(target.shape))
