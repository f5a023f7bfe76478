"""DDPM and DDIM: each step against the papers and diffusers, DDIM(eta=1) = DDPM, seeds, shapes and bad input."""

import pytest
import torch
from torch import nn

from cvcourse.diffusion import (
    NoiseSchedule,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
    predict_x0,
)

T = 50


class ToyEps(nn.Module):
    """A smooth stand-in for a trained noise predictor that depends on x_t, t and the label (null label: 3)."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.9))
        self.batch_sizes: list[int] = []

    def forward(self, x_t, t, labels=None):
        self.batch_sizes.append(len(x_t))
        label = labels.float() if labels is not None else torch.full((len(x_t),), 3.0)
        return torch.tanh(self.scale * x_t + (t.float() / T + 0.1 * label)[:, None, None, None])


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def schedule():
    return NoiseSchedule.cosine(T)


def test_ddpm_step_without_clipping_is_algorithm_2(schedule):
    x_t, eps, noise = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    for t in (0, 1, 25, T - 1):
        alpha, alpha_bar = schedule.alphas[t].item(), schedule.alpha_bar[t].item()
        sigma = schedule.beta_tilde[t].item() ** 0.5
        expected = (x_t - (1 - alpha) / (1 - alpha_bar) ** 0.5 * eps) / alpha ** 0.5 + sigma * noise
        torch.testing.assert_close(ddpm_step(schedule, x_t, t, eps, noise=noise, clip_x0=False), expected)


@pytest.mark.parametrize("clip_x0", [False, True])
def test_ddpm_step_matches_diffusers(clip_x0):
    diffusers = pytest.importorskip("diffusers")
    reference = diffusers.DDPMScheduler(num_train_timesteps=1000, variance_type="fixed_small", clip_sample=clip_x0)
    # its float32 product of 1000 alphas is off by ~1e-5 relative, which 1 / sqrt(alpha_bar_999) = 157 amplifies
    reference.alphas_cumprod = torch.cumprod(1 - reference.betas.double(), dim=0)
    schedule = NoiseSchedule.linear(1000)
    x_t, eps = torch.randn(2, 3, 4, 4) * 2, torch.randn(2, 3, 4, 4)
    for t in (0, 1, 500, 999):
        ours = ddpm_step(schedule, x_t, t, eps, noise=torch.randn(x_t.shape, generator=seeded(t)), clip_x0=clip_x0)
        theirs = reference.step(eps, t, x_t, generator=seeded(t)).prev_sample
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("clip_x0", [False, True])
def test_ddim_with_eta_1_and_every_timestep_is_ddpm_step_by_step(schedule, clip_x0):
    """Song et al. 2021, eq. 16: sigma(eta = 1) is the DDPM posterior's, so both updates agree given the same noise."""
    torch.testing.assert_close(torch.stack([ddim_sigma(schedule, t, t - 1, 1.0) ** 2 for t in range(T)]),
                               schedule.beta_tilde)
    model, x = ToyEps(), torch.randn(3, 1, 4, 4, generator=seeded(0)) * 1.5
    for t in reversed(range(T)):
        eps, noise = model(x, torch.full((3,), t)), torch.randn(x.shape, generator=seeded(t))
        x_ddpm = ddpm_step(schedule, x, t, eps, noise=noise, clip_x0=clip_x0)
        x_ddim = ddim_step(schedule, x, t, t - 1, eps, eta=1.0, noise=noise, clip_x0=clip_x0)
        torch.testing.assert_close(x_ddim, x_ddpm, atol=1e-5, rtol=1e-4)  # unclipped, x grows large
        x = x_ddpm


def test_ddim_sampler_with_eta_1_and_every_timestep_is_the_ddpm_sampler(schedule):
    model, labels = ToyEps().eval(), torch.tensor([0, 2])
    ddpm = ddpm_sample(model, schedule, (2, 1, 5, 5), labels=labels, generator=seeded(3))
    ddim = ddim_sample(model, schedule, (2, 1, 5, 5), steps=T, eta=1.0, labels=labels, generator=seeded(3))
    torch.testing.assert_close(ddim, ddpm, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eta, clip_x0", [(0.0, False), (0.0, True), (0.5, False), (1.0, True)])
def test_ddim_step_matches_diffusers(eta, clip_x0):
    diffusers = pytest.importorskip("diffusers")
    reference = diffusers.DDIMScheduler(num_train_timesteps=1000, clip_sample=clip_x0)
    reference.set_timesteps(20)
    schedule = NoiseSchedule.linear(1000)
    timesteps = ddim_timesteps(1000, 20, spacing="leading")
    assert timesteps == reference.timesteps.tolist()
    x = torch.randn(2, 3, 4, 4, generator=seeded(0))
    for t, t_prev in zip(timesteps, timesteps[1:] + [-1]):
        eps, noise = torch.randn(x.shape, generator=seeded(t)), torch.randn(x.shape, generator=seeded(t + 1))
        ours = ddim_step(schedule, x, t, t_prev, eps, eta=eta, noise=noise, clip_x0=clip_x0)
        theirs = reference.step(eps, t, x, eta=eta, use_clipped_model_output=True, variance_noise=noise).prev_sample
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
        x = ours


@pytest.mark.parametrize("steps", range(2, 21))
def test_stochastic_ddim_step_from_the_cosine_schedules_top_timestep_stays_finite_in_float32(steps):
    # alpha_bar_999 ~ 2e-9: sigma_t^2 and 1 - alpha_bar_prev agree to float32's last bits, and their difference,
    # taken in float32, went below zero (a NaN for every image) for some step counts
    schedule = NoiseSchedule.cosine(1000)
    t, t_prev = ddim_timesteps(1000, steps)[:2]
    x, eps = torch.randn(4, 1, 8, 8, generator=seeded(0)), torch.randn(4, 1, 8, 8, generator=seeded(1))
    x_prev = ddim_step(schedule, x, t, t_prev, eps, eta=1.0, noise=torch.randn(x.shape, generator=seeded(2)))
    assert x_prev.dtype == torch.float32 and torch.isfinite(x_prev).all()


def test_leading_ddim_timesteps_are_song_et_als_and_can_start_anywhere():
    assert ddim_timesteps(1000, 50, spacing="leading")[:3] == [980, 960, 940]
    assert ddim_timesteps(1000, 50, spacing="leading")[-1] == 0
    assert ddim_timesteps(10, 10, spacing="leading") == list(range(9, -1, -1))
    assert ddim_timesteps(100, 1, spacing="leading") == [0]
    assert ddim_timesteps(1000, 10, t_start=250, spacing="leading") == [250, 200, 100, 0]
    assert ddim_timesteps(1000, 10, t_start=200, spacing="leading") == [200, 100, 0]


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 7, 10, 50, 333, 999, 1000])
def test_trailing_ddim_timesteps_start_at_t_minus_1_for_every_step_count(steps):
    timesteps = ddim_timesteps(1000, steps)
    assert timesteps[0] == 999 and len(timesteps) == len(set(timesteps)) == steps
    assert timesteps == sorted(timesteps, reverse=True) and timesteps[-1] >= 0
    assert ddim_timesteps(1000, 1) == [999] and ddim_timesteps(1000, 4) == [999, 749, 499, 249]
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))


@pytest.mark.parametrize("steps", [1, 5, 20])
def test_trailing_timesteps_match_diffusers(steps):
    diffusers = pytest.importorskip("diffusers")
    reference = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    reference.set_timesteps(steps)
    assert ddim_timesteps(1000, steps) == reference.timesteps.tolist()


def test_an_unknown_spacing_names_the_choices():
    with pytest.raises(ValueError, match="trailing, leading"):
        ddim_timesteps(1000, 10, spacing="linspace")


def test_ddim_with_eta_0_is_deterministic_and_lands_on_predicted_x0(schedule):
    model = ToyEps()
    x_T = torch.randn(2, 1, 4, 4, generator=seeded(1))
    first = ddim_sample(model, schedule, x_T.shape, steps=10, x_T=x_T, clip_x0=False)
    assert torch.equal(first, ddim_sample(model, schedule, x_T.shape, steps=10, x_T=x_T, clip_x0=False))
    x_1 = ddim_sample(model, schedule, x_T.shape, steps=1, x_T=x_T, clip_x0=False)
    top = ddim_timesteps(T, 1)[0]
    torch.testing.assert_close(x_1, predict_x0(schedule, x_T, top, model(x_T, torch.full((2,), top))))


@pytest.mark.parametrize("sampler", [ddpm_sample, ddim_sample])
def test_samplers_are_seeded_give_the_shape_and_clip_to_the_data_range(schedule, sampler):
    model = ToyEps()
    shape = (3, 2, 5, 7)
    a = sampler(model, schedule, shape, generator=seeded(0), labels=torch.tensor([0, 1, 2]))
    b = sampler(model, schedule, shape, generator=seeded(0), labels=torch.tensor([0, 1, 2]))
    c = sampler(model, schedule, shape, generator=seeded(1), labels=torch.tensor([0, 1, 2]))
    assert a.shape == shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1
    assert not torch.is_grad_enabled() or a.grad_fn is None  # sampled under no_grad


def test_starting_at_an_intermediate_timestep_runs_only_the_remaining_steps(schedule):
    model, x_t = ToyEps(), torch.randn(2, 1, 4, 4)
    ddpm_sample(model, schedule, x_t.shape, x_T=x_t, t_start=9)
    assert len(model.batch_sizes) == 10
    model.batch_sizes.clear()
    ddim_sample(model, schedule, x_t.shape, steps=10, x_T=x_t, t_start=12, spacing="leading")  # 12, 10, 5, 0
    assert len(model.batch_sizes) == 4
    model.batch_sizes.clear()
    ddim_sample(model, schedule, x_t.shape, steps=10, x_T=x_t, t_start=12)  # 12, then 9 and 4 of the trailing grid
    assert len(model.batch_sizes) == 3


def test_bad_input_is_explained(schedule):
    model, x = ToyEps(), torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, T\] = \[1, 50\]"):
        ddim_sample(model, schedule, x.shape, steps=51)
    with pytest.raises(ValueError, match="steps must be an int"):
        ddim_sample(model, schedule, x.shape, steps=0)
    with pytest.raises(ValueError, match="eta must be a number >= 0"):
        ddim_sample(model, schedule, x.shape, eta=-0.1)
    with pytest.raises(ValueError, match="only with eta = 0"):
        ddim_step(schedule, x, 10, 20, x, eta=0.5)
    with pytest.raises(ValueError, match="must differ"):
        ddim_step(schedule, x, 10, 10, x)
    with pytest.raises(ValueError, match=r"x_T=q_sample\(schedule, x0, t_start\)"):
        ddpm_sample(model, schedule, x.shape, t_start=10)
    with pytest.raises(ValueError, match=r"t_start must be an int in \[0, T\)"):
        ddpm_sample(model, schedule, x.shape, t_start=T)
    with pytest.raises(ValueError, match="pass x_T.shape"):
        ddim_sample(model, schedule, (3, 1, 4, 4), x_T=x)
    with pytest.raises(ValueError, match="batch shape of positive ints"):
        ddpm_sample(model, schedule, (2, 0, 4, 4))


def test_unclipped_sampling_must_avoid_the_degenerate_top_step_of_the_cosine_schedule():
    """An error of 1% in the predicted noise, divided by sqrt(alpha_bar_T) ~ 3e-5 at the trailing grid's first step,
    blows the sample up when nothing clips x_0 (latents); the leading grid, as latent sampling uses, keeps it in
    scale."""

    class OnePercentOff(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, labels=None):
            return 0.99 * x + self.anchor

    schedule = NoiseSchedule.cosine(1000)
    x_T = torch.randn(64, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    trailing, leading = (ddim_sample(OnePercentOff(), schedule, x_T.shape, steps=10, clip_x0=False, x_T=x_T,
                                     spacing=spacing) for spacing in ("trailing", "leading"))
    assert trailing.std() > 20 * leading.std() and leading.std() < 10
