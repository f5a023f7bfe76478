"""Classifier-free guidance: eq. 6, w = 0 is the conditional model, one batched forward pass, bad input."""

import pytest
import torch
from torch import nn

from cvcourse.diffusion import (
    NoiseSchedule,
    ddim_sample,
    eps_theta,
    guided_eps,
    null_label,
)
from cvcourse.models.diffusion_unet import DiffusionUNet


class Recorder(nn.Module):
    """Returns the label (as a float) everywhere and records what each forward pass received."""

    num_classes = 4

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, list[int], list[int]]] = []

    def forward(self, x_t, t, labels=None):
        self.seen.append((len(x_t), t.tolist(), labels.tolist()))
        return labels.float()[:, None, None, None].expand_as(x_t).clone()


def test_guided_eps_is_eq_6():
    eps_cond, eps_uncond = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0])
    torch.testing.assert_close(guided_eps(eps_cond, eps_uncond, 3.0), 4 * eps_cond - 3 * eps_uncond)
    assert torch.equal(guided_eps(eps_cond, eps_uncond, 0.0), eps_cond)
    assert torch.equal(guided_eps(eps_cond, eps_uncond, -1.0), eps_uncond)


def test_guidance_runs_one_forward_pass_with_labels_then_null_labels():
    model, x = Recorder(), torch.zeros(2, 1, 3, 3)
    eps = eps_theta(model, x, 7, torch.tensor([1, 2]), guidance_scale=2.0)
    assert model.seen == [(4, [7, 7, 7, 7], [1, 2, 4, 4])]  # null label = num_classes
    torch.testing.assert_close(eps[:, 0, 0, 0], 3 * torch.tensor([1.0, 2.0]) - 2 * 4.0)


def test_zero_guidance_equals_the_conditional_prediction():
    torch.manual_seed(0)
    model = DiffusionUNet(1, base_width=4, depth=1, embed_dim=8, num_classes=3).eval()
    nn.init.normal_(model.unet.head.weight)  # the zero-initialised head would predict 0 for every label
    x, t, labels = torch.randn(2, 1, 8, 8), torch.tensor([3, 30]), torch.tensor([0, 2])
    assert torch.equal(eps_theta(model, x, t, labels, 0.0), model(x, t, labels))
    guided = eps_theta(model, x, t, labels, 1.5)
    expected = guided_eps(model(x, t, labels), model(x, t, None), 1.5)
    torch.testing.assert_close(guided, expected, atol=1e-5, rtol=1e-5)


def test_guidance_finds_the_null_label_of_an_ema_copy():
    ema = torch.optim.swa_utils.AveragedModel(Recorder())
    assert null_label(ema) == 4
    eps_theta(ema, torch.zeros(1, 1, 2, 2), 0, torch.tensor([2]), guidance_scale=1.0)
    assert ema.module.seen == [(2, [0, 0], [2, 4])]


def test_samplers_apply_guidance_at_every_step():
    model, schedule = Recorder(), NoiseSchedule.linear(20)
    ddim_sample(model, schedule, (2, 1, 3, 3), steps=5, labels=torch.tensor([0, 3]), guidance_scale=1.0,
                generator=torch.Generator().manual_seed(0))
    assert [batch for batch, _, _ in model.seen] == [4] * 5
    assert all(labels == [0, 3, 4, 4] for _, _, labels in model.seen)


def test_bad_guidance_input_is_explained():
    x = torch.zeros(2, 1, 3, 3)
    unconditional = DiffusionUNet(1, base_width=4, depth=1, embed_dim=8)
    with pytest.raises(ValueError, match=r"class-conditional model.*DiffusionUNet\(num_classes=10\)"):
        eps_theta(unconditional, x, 0, torch.tensor([0, 1]), guidance_scale=1.0)
    with pytest.raises(ValueError, match="needs labels"):
        eps_theta(Recorder(), x, 0, None, guidance_scale=1.0)
    with pytest.raises(ValueError, match="finite number"):
        eps_theta(Recorder(), x, 0, torch.tensor([0, 1]), guidance_scale=float("nan"))
    with pytest.raises(ValueError, match="same shape"):
        guided_eps(torch.zeros(2), torch.zeros(3), 1.0)
    assert null_label(Recorder()) == 4
