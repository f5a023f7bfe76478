"""The forward process and L_simple: closed-form moments, inverses, label dropping, gradients and bad input."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.diffusion import (
    NoiseSchedule,
    diffusion_loss,
    diffusion_training_step,
    drop_labels,
    min_snr_weights,
    predict_eps,
    predict_x0,
    q_sample,
)
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.train import Trainer


def test_q_sample_has_the_closed_form_mean_and_variance_of_eq_4():
    schedule = NoiseSchedule.linear(1000)
    x0 = torch.tensor([-1.0, 0.0, 0.5, 1.0]).repeat(20_000, 1)
    for t in (0, 250, 999):
        x_t = q_sample(schedule, x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(t)))
        alpha_bar = schedule.alpha_bar[t].item()
        # standard errors: sqrt(var / n) for the mean, about var * sqrt(2 / n) for the variance
        torch.testing.assert_close(x_t.mean(0), alpha_bar ** 0.5 * x0[0], atol=4 * (1 / 20_000) ** 0.5, rtol=0)
        torch.testing.assert_close(x_t.var(0), torch.full((4,), 1 - alpha_bar), atol=4e-2 * (1 - alpha_bar) + 1e-9,
                                   rtol=0)


def test_q_sample_takes_one_timestep_per_sample():
    schedule = NoiseSchedule.cosine(100)
    x0, noise = torch.rand(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    together = q_sample(schedule, x0, torch.tensor([0, 40, 99]), noise)
    for i, t in enumerate((0, 40, 99)):
        torch.testing.assert_close(together[i:i + 1], q_sample(schedule, x0[i:i + 1], t, noise[i:i + 1]))


def test_predict_x0_and_predict_eps_invert_q_sample():
    schedule = NoiseSchedule.linear(1000)
    x0, eps, t = torch.rand(4, 3, 5, 5) * 2 - 1, torch.randn(4, 3, 5, 5), torch.tensor([0, 10, 500, 900])
    x_t = q_sample(schedule, x0, t, eps)
    torch.testing.assert_close(predict_x0(schedule, x_t, t, eps), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(predict_eps(schedule, x_t, t, x0), eps, atol=1e-4, rtol=1e-4)


def test_diffusion_loss_is_finite_differentiable_and_seeded():
    schedule = NoiseSchedule.cosine(50)
    model = DiffusionUNet(1, base_width=4, depth=1, embed_dim=16, num_classes=3)
    x0, labels = torch.rand(6, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    loss = diffusion_loss(model, schedule, x0, labels, drop_label_prob=0.5, generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(1.0, abs=0.3)  # the zero-initialised head predicts eps = 0: E[eps^2] = 1
    loss.backward()
    assert model.unet.head.weight.grad.abs().sum() > 0
    again = diffusion_loss(model, schedule, x0, labels, drop_label_prob=0.5, generator=torch.Generator().manual_seed(0))
    assert again.item() == loss.item()


def test_diffusion_loss_is_l_simple_of_the_noise():
    """A model that returns the true noise has zero loss; one that returns zeros has loss E[eps^2]."""
    schedule, x0 = NoiseSchedule.linear(100), torch.rand(64, 1, 8, 8) * 2 - 1

    def oracle(x_t, t, labels):
        return predict_eps(schedule, x_t, t, x0)

    assert diffusion_loss(oracle, schedule, x0).item() == pytest.approx(0.0, abs=1e-6)
    zero = diffusion_loss(lambda x_t, t, labels: torch.zeros_like(x_t), schedule, x0,
                          generator=torch.Generator().manual_seed(1))
    assert zero.item() == pytest.approx(1.0, abs=0.05)


def test_min_snr_weights_are_min_snr_gamma_over_snr():
    """Hang et al. 2023: weight 1 where SNR_t <= gamma, gamma / SNR_t where the image is barely noised."""
    schedule, t = NoiseSchedule.linear(1000), torch.tensor([0, 100, 300, 999])
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t]
    snr = alpha_bar / (1 - alpha_bar)
    weights = min_snr_weights(schedule, t, 5.0)
    torch.testing.assert_close(weights, torch.where(snr > 5, 5 / snr, torch.ones_like(snr)))
    assert weights[0].item() == pytest.approx(5 / 9999, rel=1e-6)  # alpha_bar_0 = 1 - 1e-4: SNR 9999
    assert weights[-1].item() == 1.0
    with pytest.raises(ValueError, match="positive"):
        min_snr_weights(schedule, t, 0.0)
    with pytest.raises(ValueError, match=r"\[0, T\)"):
        min_snr_weights(schedule, torch.tensor([1000]), 5.0)


def test_min_snr_loss_weights_each_samples_squared_error():
    """Replaying the loss's own draws: a model that predicts zeros has per-sample loss mean(eps^2), times w(t)."""
    schedule, x0 = NoiseSchedule.cosine(100), torch.rand(64, 1, 8, 8) * 2 - 1

    def zero(x_t, t, labels):
        return torch.zeros_like(x_t)

    generator = torch.Generator().manual_seed(2)
    t = torch.randint(0, schedule.T, (64,), generator=generator)
    per_sample = torch.randn(x0.shape, generator=generator).pow(2).flatten(1).mean(1)
    weighted = diffusion_loss(zero, schedule, x0, min_snr_gamma=5.0, generator=torch.Generator().manual_seed(2))
    plain = diffusion_loss(zero, schedule, x0, generator=torch.Generator().manual_seed(2))
    assert plain.item() == pytest.approx(per_sample.mean().item(), rel=1e-6)
    expected = (min_snr_weights(schedule, t, 5.0).float() * per_sample).mean()
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-6)
    assert weighted.item() < plain.item()


def test_diffusion_step_trains_with_the_trainer():
    schedule = NoiseSchedule.cosine(20)
    model = DiffusionUNet(1, base_width=4, depth=1, embed_dim=8, num_classes=2)
    images, labels = torch.rand(8, 1, 8, 8), torch.tensor([0, 1] * 4)
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2),
                      diffusion_training_step(schedule, conditional=True, drop_label_prob=0.5, min_snr_gamma=5.0),
                      device="cpu", progress=False)
    trainer.fit(loader, steps=4)
    _, losses = trainer.history.series("loss")
    assert len(losses) == 4 and all(0 < loss < 2 for loss in losses)
    assert model.unet.head.weight.abs().sum() > 0
    with pytest.raises(ValueError, match="conditional=True"):
        diffusion_training_step(schedule, drop_label_prob=0.1)


def test_drop_labels_uses_the_null_label_with_the_given_probability():
    labels = torch.zeros(20_000, dtype=torch.long)
    dropped = drop_labels(labels, 10, 0.2, torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) == {0, 10}
    assert (dropped == 10).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert torch.equal(drop_labels(labels, 10, 0.0), labels)
    assert (drop_labels(labels, 10, 1.0) == 10).all()


def test_bad_input_is_explained():
    schedule = NoiseSchedule.linear(10)
    model = DiffusionUNet(1, base_width=4, depth=1, embed_dim=8)
    x0 = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"images \* 2 - 1"):
        q_sample(schedule, torch.zeros(2, 1, 4, 4, dtype=torch.uint8), 0)
    with pytest.raises(ValueError, match="shape of x0"):
        q_sample(schedule, x0, 0, torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match=r"\[0, T\)"):
        q_sample(schedule, x0, -1)
    with pytest.raises(ValueError, match="one timestep per sample"):
        q_sample(schedule, x0, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="needs labels to drop"):
        diffusion_loss(model, schedule, x0, drop_label_prob=0.1)
    with pytest.raises(ValueError, match="class-conditional model.*num_classes=10"):
        diffusion_loss(model, schedule, x0, torch.tensor([0, 1]), drop_label_prob=0.1)
    with pytest.raises(ValueError, match="one label per image"):
        diffusion_loss(model, schedule, x0, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        drop_labels(torch.tensor([0, 1]), 2, 1.5)
