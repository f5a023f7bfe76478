"""Diffusion models as denoisers of [0, 1] images: the window of timesteps that covers a range of noise levels, the
window as a schedule of its own, and denoising with an oracle noise predictor on the full schedule and the window."""

import pytest
import torch

from cvcourse.diffusion.denoisers import denoise_images, timestep_window, window_schedule
from cvcourse.diffusion.purification import noise_levels
from cvcourse.diffusion.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.named("cosine", 1000)


def test_the_window_is_the_fewest_timesteps_that_cover_the_noise_levels():
    levels = noise_levels(SCHEDULE)
    t_low, t_high = timestep_window(SCHEDULE, 0.2, 1.0)
    assert levels[t_low] <= 0.2 < levels[t_low + 1] and levels[t_high - 1] < 1.0 <= levels[t_high]
    assert timestep_window(SCHEDULE, 1e-9, 1e9) == (0, SCHEDULE.T - 1)
    with pytest.raises(ValueError, match="0 < sigma_low <= sigma_high"):
        timestep_window(SCHEDULE, 0.5, 0.2)


def test_the_window_schedule_has_the_noise_of_its_timesteps():
    window = window_schedule(SCHEDULE, 120, 500)
    assert window.T == 381
    assert torch.allclose(window.alpha_bar, SCHEDULE.alpha_bar[120:501], rtol=1e-12)
    assert torch.allclose(noise_levels(window), noise_levels(SCHEDULE)[120:501], rtol=1e-12)
    with pytest.raises(ValueError, match="t_low <= t_high"):
        window_schedule(SCHEDULE, 500, 120)


class Oracle(torch.nn.Module):
    """The noise that x_t holds, knowing the clean images in [-1, 1]."""

    def __init__(self, schedule: NoiseSchedule, x0: torch.Tensor) -> None:
        super().__init__()
        self.schedule, self.x0 = schedule, x0
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x_t, t, labels=None):
        signal = self.schedule.gather(self.schedule.sqrt_alpha_bar, t, x_t)
        return (x_t - signal * self.x0) / self.schedule.gather(self.schedule.sqrt_one_minus_alpha_bar, t, x_t)


@pytest.mark.parametrize("schedule", [SCHEDULE, window_schedule(SCHEDULE, *timestep_window(SCHEDULE, 0.2, 1.0))])
def test_an_oracle_denoiser_returns_the_clean_images(schedule):
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 3, 8, 8, generator=generator) * 0.8 + 0.1
    noisy = clean + 0.3 * torch.randn(clean.shape, generator=generator)
    for steps in (1, 3):
        restored = denoise_images(Oracle(schedule, clean * 2 - 1), schedule, noisy, 0.3, steps=steps, batch_size=3)
        assert torch.allclose(restored, clean, atol=1e-4)
