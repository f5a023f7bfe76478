"""SmallCNN: shapes, gradients, features, bad input."""

import pytest
import torch

from cvcourse.models import SmallCNN


@pytest.mark.parametrize("size", [(8, 8), (32, 32), (45, 61)])
def test_logits_and_features_have_the_right_shapes(size):
    model = SmallCNN(num_classes=4, width=8)
    images = torch.rand(3, 3, *size)
    assert model(images).shape == (3, 4)
    assert model.features(images).shape == (3, 32)


def test_every_parameter_gets_a_gradient():
    model = SmallCNN(num_classes=3, in_channels=1, width=4)
    model(torch.rand(2, 1, 16, 16)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_same_seed_same_model():
    torch.manual_seed(0)
    a = SmallCNN(4, width=8)
    torch.manual_seed(0)
    b = SmallCNN(4, width=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_input_is_explained():
    model = SmallCNN(num_classes=4)
    with pytest.raises(ValueError, match=r"expects a batch of shape \(B, 3, H, W\).*unsqueeze\(0\)"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="in_channels=1"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="at least 8x8"):
        model(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="num_classes >= 2"):
        SmallCNN(num_classes=1)
