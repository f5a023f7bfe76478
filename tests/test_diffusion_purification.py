"""A diffusion model as a denoiser at a known noise level: the sigma-to-timestep mapping, the noisy image as the
forward process, purification with an oracle noise predictor, and a sigma outside the schedule."""

import pytest
import torch

from cvcourse.diffusion.forward import q_sample
from cvcourse.diffusion.purification import noise_level_timestep, noise_levels, purify
from cvcourse.diffusion.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.named("cosine", 1000)


def test_noise_levels_rise_with_t_and_the_mapping_picks_the_closest():
    levels = noise_levels(SCHEDULE)
    assert (levels[1:] > levels[:-1]).all()
    for sigma in (0.05, 0.2, 0.5, 1.0, 3.0):
        t = noise_level_timestep(SCHEDULE, sigma)
        assert (1 / SCHEDULE.alpha_bar[t] - 1).sqrt() == pytest.approx(levels[t].item())
        assert abs(levels[t] - sigma) <= (levels - sigma).abs().min() + 1e-12
    assert noise_level_timestep(SCHEDULE, 0.2) < noise_level_timestep(SCHEDULE, 0.5)


def test_a_scaled_noisy_image_is_the_forward_process_at_that_timestep():
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(2, 1, 8, 8, generator=generator) * 2 - 1, torch.randn(2, 1, 8, 8, generator=generator)
    sigma = 0.4
    t = noise_level_timestep(SCHEDULE, sigma)
    scaled = SCHEDULE.sqrt_alpha_bar[t].float() * (x0 + sigma * noise)
    assert torch.allclose(scaled, q_sample(SCHEDULE, x0, t, noise), atol=2e-3)


def test_purification_with_the_true_noise_returns_the_clean_image():
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 1, 8, 8, generator=generator) * 1.6 - 0.8

    def oracle(x_t, t, labels=None):  # the noise that x_t holds, knowing x_0
        signal = SCHEDULE.gather(SCHEDULE.sqrt_alpha_bar, t, x_t)
        return (x_t - signal * x0) / SCHEDULE.gather(SCHEDULE.sqrt_one_minus_alpha_bar, t, x_t)

    noisy = x0 + 0.3 * torch.randn(x0.shape, generator=generator)
    for steps in (1, 2, 5):
        assert torch.allclose(purify(oracle, SCHEDULE, noisy, 0.3, steps=steps), x0, atol=1e-4)


def test_a_noise_level_outside_the_schedule_is_refused():
    with pytest.raises(ValueError, match="outside the noise levels"):
        noise_level_timestep(SCHEDULE, 0.0)
    with pytest.raises(ValueError, match=r"sigma = 2 s"):
        noise_level_timestep(SCHEDULE, 1e9)
