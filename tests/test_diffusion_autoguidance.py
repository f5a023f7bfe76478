"""Autoguidance: (1 + w) eps_good - w eps_guide, equal to Karras et al. 2024's eq. 2 on the denoised image, usable
by every sampler, w = 0 is the model alone, bad input."""

import pytest
import torch
from torch import nn

from cvcourse.diffusion import NoiseSchedule, ddim_sample, ddpm_sample, predict_x0
from cvcourse.diffusion.autoguidance import AutoGuided
from cvcourse.models.diffusion_unet import DiffusionUNet


class Constant(nn.Module):
    """Predicts ``value`` everywhere and counts its calls."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value, self.calls = nn.Parameter(torch.tensor(value)), 0

    def forward(self, x_t, t, labels=None):
        self.calls += 1
        return self.value.expand_as(x_t)


def unet(seed: int, width: int) -> DiffusionUNet:
    torch.manual_seed(seed)
    model = DiffusionUNet(1, base_width=width, depth=1, embed_dim=8).eval()
    nn.init.normal_(model.unet.head.weight)  # the zero-initialised head would predict 0 everywhere
    return model


def test_autoguided_prediction_extrapolates_from_the_guide():
    guided = AutoGuided(Constant(1.0), Constant(3.0), scale=0.5)
    eps = guided(torch.zeros(2, 1, 4, 4), torch.tensor([5, 5]))
    torch.testing.assert_close(eps, torch.full((2, 1, 4, 4), 1.5 * 1.0 - 0.5 * 3.0))


def test_zero_scale_is_the_model_alone_and_skips_the_guide():
    model, guide = unet(0, 4), unet(1, 4)
    guided, x, t = AutoGuided(model, guide, scale=0.0), torch.randn(3, 1, 8, 8), torch.tensor([1, 5, 9])
    calls = []
    guide.register_forward_hook(lambda *args: calls.append(1))
    assert torch.equal(guided(x, t), model(x, t)) and calls == []


def test_it_is_eq_2_of_the_paper_on_the_denoised_image():
    """Karras et al. 2024, eq. 2: D_w = w D_1 + (1 - w) D_0 with the paper's w = 1 + ours; D is predict_x0."""
    schedule, model, guide = NoiseSchedule.cosine(50), unet(0, 8), unet(1, 4)
    x, t, w = torch.randn(2, 1, 8, 8), 30, 0.75
    with torch.no_grad():
        eps = AutoGuided(model, guide, scale=w)(x, torch.tensor([t, t]))
        good, bad = (predict_x0(schedule, x, t, net(x, torch.tensor([t, t]))) for net in (model, guide))
    torch.testing.assert_close(predict_x0(schedule, x, t, eps), (1 + w) * good + (1 - (1 + w)) * bad,
                               atol=1e-4, rtol=1e-4)


def test_samplers_take_it_in_place_of_the_model():
    schedule, model, guide = NoiseSchedule.linear(10), unet(0, 4), unet(1, 4)
    shape = (2, 1, 8, 8)

    def draw(net, sampler, **options):
        return sampler(net, schedule, shape, generator=torch.Generator().manual_seed(3), **options)

    for sampler, options in ((ddpm_sample, {}), (ddim_sample, {"steps": 4, "eta": 1.0})):
        alone = draw(model, sampler, **options)
        assert torch.equal(draw(AutoGuided(model, guide, 0.0), sampler, **options), alone)
        guided = draw(AutoGuided(model, guide, 1.0), sampler, **options)
        assert guided.shape == shape and not torch.allclose(guided, alone)
        assert torch.equal(draw(AutoGuided(model, guide, 1.0), sampler, **options), guided)  # seeded


def test_the_scale_is_in_the_state_dict_so_cache_keys_see_it():
    model, guide = unet(0, 4), unet(1, 4)
    state = AutoGuided(model, guide, 0.5).state_dict()
    assert state["scale"].item() == 0.5
    assert {name for name in state if name != "scale"} == {f"model.{k}" for k in model.state_dict()} | {
        f"guide.{k}" for k in guide.state_dict()}


@pytest.mark.parametrize("scale", [-0.5, float("nan"), float("inf"), True, "1"])
def test_bad_scales_are_explained(scale):
    with pytest.raises(ValueError, match="scale must be a finite number >= 0"):
        AutoGuided(unet(0, 4), unet(1, 4), scale)


def test_a_model_cannot_guide_itself():
    model = unet(0, 4)
    with pytest.raises(ValueError, match="separate, weaker model"):
        AutoGuided(model, model, 1.0)


def test_mismatched_predictions_are_explained():
    guided = AutoGuided(Constant(0.0), lambda x, t, labels=None: torch.zeros(1), 1.0)
    with pytest.raises(ValueError, match="same shape"):
        guided(torch.zeros(2, 1, 4, 4), torch.tensor([0, 0]))
