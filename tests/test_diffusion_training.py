"""The generic parts of diffusion training: the learning-rate schedule and the step timer."""

import pytest
import torch

from cvcourse.diffusion import NoiseSchedule
from cvcourse.diffusion.training import seconds_per_step, warmup_cosine
from cvcourse.models import DiffusionUNet


def test_warmup_cosine_rises_then_decays_to_zero():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, steps=100, warmup_fraction=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[55] == pytest.approx(0.5, abs=0.02) and rates[-1] < 1e-3
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))


def test_seconds_per_step_times_without_touching_the_model():
    torch.manual_seed(0)
    model, schedule = DiffusionUNet(1, base_width=4, depth=1), NoiseSchedule.linear(10)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    calls = []
    seconds = seconds_per_step(model, schedule, torch.randn(4, 1, 8, 8), repeats=3, warmup=1,
                               encode=lambda x: calls.append(1) or x)
    assert seconds > 0 and len(calls) == 4  # the encoder runs inside every timed step
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    with pytest.raises(ValueError, match="repeats"):
        seconds_per_step(model, schedule, torch.randn(4, 1, 8, 8), repeats=0)
