"""Noise schedules: the papers' formulas, diffusers' DDPMScheduler as a reference, timesteps and bad input."""

import math

import pytest
import torch

from cvcourse.diffusion import NoiseSchedule, cosine_betas, linear_betas


def test_linear_betas_are_ho_et_al_section_4():
    betas = linear_betas()
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64))


def test_cosine_betas_give_the_alpha_bar_of_nichol_and_dhariwal_eq_17():
    T, s = 50, 0.008
    alpha_bar = NoiseSchedule(cosine_betas(T, s=s, max_beta=1.0 - 1e-12)).alpha_bar
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    expected = torch.tensor([f[t + 1] / f[0] for t in range(T)], dtype=torch.float64)
    torch.testing.assert_close(alpha_bar[:-1], expected[:-1], rtol=1e-9, atol=1e-12)
    assert cosine_betas(T).max().item() == pytest.approx(0.999)  # the last beta would be 1 without the clip


def test_derived_quantities_follow_their_definitions():
    schedule = NoiseSchedule.linear(10, beta_start=0.01, beta_end=0.2)
    betas = schedule.betas
    alpha_bar = torch.tensor([math.prod(1 - b for b in betas[:t + 1].tolist()) for t in range(10)], dtype=torch.float64)
    torch.testing.assert_close(schedule.alphas, 1 - betas)
    torch.testing.assert_close(schedule.alpha_bar, alpha_bar)
    torch.testing.assert_close(schedule.alpha_bar_prev, torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]]))
    torch.testing.assert_close(schedule.sqrt_alpha_bar ** 2 + schedule.sqrt_one_minus_alpha_bar ** 2,
                               torch.ones(10, dtype=torch.float64))
    torch.testing.assert_close(schedule.beta_tilde, (1 - schedule.alpha_bar_prev) / (1 - alpha_bar) * betas)
    torch.testing.assert_close(schedule.snr, alpha_bar / (1 - alpha_bar))
    assert schedule.beta_tilde[0] == 0 and (schedule.beta_tilde[1:] < betas[1:]).all()
    assert schedule.T == 10 and (schedule.snr.diff() < 0).all()


@pytest.mark.parametrize("kind", ["linear", "squaredcos_cap_v2"])
def test_schedules_match_diffusers(kind):
    diffusers = pytest.importorskip("diffusers")
    reference = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=kind)
    ours = NoiseSchedule.linear(1000) if kind == "linear" else NoiseSchedule.cosine(1000)
    torch.testing.assert_close(ours.betas.float(), reference.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.alpha_bar.float(), reference.alphas_cumprod, rtol=1e-4, atol=1e-8)


def test_gather_broadcasts_over_the_batch():
    schedule = NoiseSchedule.linear(100)
    x = torch.zeros(3, 2, 4, 4, dtype=torch.float16)
    picked = schedule.gather(schedule.alpha_bar, torch.tensor([0, 50, 99]), x)
    assert picked.shape == (3, 1, 1, 1) and picked.dtype == torch.float16
    torch.testing.assert_close(picked.flatten(), schedule.alpha_bar[[0, 50, 99]].half())
    assert torch.equal(schedule.gather(schedule.betas, 7, x), schedule.gather(schedule.betas, torch.tensor(7), x))
    assert schedule.alpha_bar_at(-1, x).item() == 1 and schedule.alpha_bar_at(99, x) == schedule.alpha_bar[99].half()


def test_to_moves_every_tensor_and_repr_summarises():
    schedule = NoiseSchedule.cosine(20).to("cpu")
    assert all(value.device.type == "cpu" and value.dtype == torch.float64 for value in vars(schedule).values())
    assert repr(schedule).startswith("NoiseSchedule(T=20, betas")


@pytest.mark.parametrize("betas, message", [
    (torch.tensor([]), "non-empty 1-D"),
    (torch.full((2, 3), 0.1), "non-empty 1-D"),
    (torch.tensor([0.0, 0.1]), r"lie in \(0, 1\)"),
    (torch.tensor([0.1, 1.0]), r"lie in \(0, 1\)"),
    (torch.tensor([0.1, float("nan")]), r"lie in \(0, 1\)"),
])
def test_bad_betas_are_explained(betas, message):
    with pytest.raises(ValueError, match=message):
        NoiseSchedule(betas)


def test_bad_timesteps_and_sizes_are_explained():
    schedule = NoiseSchedule.linear(10)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\[0, T\) = \[0, 10\).*index T - 1"):
        schedule.gather(schedule.betas, 10, x)
    with pytest.raises(ValueError, match="one timestep per sample"):
        schedule.gather(schedule.betas, torch.tensor([1, 2, 3]), x)
    with pytest.raises(TypeError, match="integers"):
        schedule.gather(schedule.betas, torch.tensor([0.5, 1.0]), x)
    with pytest.raises(TypeError, match="int or an integer tensor"):
        schedule.gather(schedule.betas, 1.0, x)
    with pytest.raises(ValueError, match=r"\[-1, 10\)"):
        schedule.alpha_bar_at(-2, x)
    with pytest.raises(ValueError, match="positive int"):
        linear_betas(0)
    with pytest.raises(ValueError, match="positive int"):
        NoiseSchedule.cosine(T=12.5)
