"""The VAE objective: reparameterisation, the Gaussian KL against torch.distributions, the negative ELBO's sum and mean
reductions and beta, and vae_step in the Trainer."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.generative.vae import gaussian_kl, vae_loss, vae_step
from cvcourse.models import VAE
from cvcourse.models.vae import reparameterize
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def posterior(batch: int = 5, latent: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, latent, generator=generator), torch.randn(batch, latent, generator=generator)


# ---------------------------------------------------------------------------------------------
# reparameterize


def test_reparameterize_is_mu_plus_sigma_times_the_noise():
    mu, logvar = posterior()
    noise = torch.randn(5, 3)
    torch.testing.assert_close(reparameterize(mu, logvar, noise), mu + torch.exp(logvar).sqrt() * noise)


def test_reparameterized_samples_have_the_posterior_mean_and_standard_deviation():
    mu = torch.tensor([1.5, -2.0, 0.0]).expand(200_000, 3)
    logvar = torch.log(torch.tensor([0.25, 4.0, 1.0])).expand(200_000, 3)
    torch.manual_seed(0)
    z = reparameterize(mu, logvar)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.5, -2.0, 0.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 2.0, 1.0]), atol=0, rtol=0.01)


def test_gradients_flow_to_mu_and_logvar_through_the_sample():
    mu, logvar = (t.requires_grad_() for t in posterior())
    noise = torch.randn(5, 3)
    reparameterize(mu, logvar, noise).sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(5, 3))
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * noise)


def test_reparameterize_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"mu and logvar must have the same shape, got \(5, 3\) and \(5, 4\)"):
        reparameterize(torch.zeros(5, 3), torch.zeros(5, 4))


# ---------------------------------------------------------------------------------------------
# gaussian_kl


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = posterior(batch=7, latent=4)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (7,)
    torch.testing.assert_close(kl, expected)
    assert (kl > 0).all()
    assert torch.equal(gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))  # q equals the prior


@pytest.mark.parametrize("mu_shape, logvar_shape", [((5, 3), (5, 4)), ((3,), (3,)), ((2, 3, 4), (2, 3, 5))])
def test_gaussian_kl_refuses_unequal_shapes_or_a_missing_batch_dimension(mu_shape, logvar_shape):
    with pytest.raises(ValueError, match=r"expected mu and logvar of the same shape \(B, latent_dim\)"):
        gaussian_kl(torch.zeros(mu_shape), torch.zeros(logvar_shape))


def test_gaussian_kl_of_a_latent_map_sums_over_all_its_values():
    mu, logvar = torch.randn(3, 4, 7, 7), torch.randn(3, 4, 7, 7)
    torch.testing.assert_close(gaussian_kl(mu, logvar), gaussian_kl(mu.flatten(1), logvar.flatten(1)))


# ---------------------------------------------------------------------------------------------
# vae_loss


def loss_inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 3, 8, 8, generator=generator)
    reconstruction = torch.rand(4, 3, 8, 8, generator=generator)
    return (reconstruction, images, *posterior(batch=4, latent=5, seed=seed))


def test_sum_reduction_is_the_per_image_negative_elbo_averaged_over_the_batch():
    reconstruction, images, mu, logvar = loss_inputs()
    terms = vae_loss(reconstruction, images, mu, logvar)
    torch.testing.assert_close(terms["reconstruction"], F.mse_loss(reconstruction, images, reduction="sum") / 4)
    torch.testing.assert_close(terms["kl"], gaussian_kl(mu, logvar).mean())
    torch.testing.assert_close(terms["loss"], terms["reconstruction"] + terms["kl"])


def test_mean_reduction_divides_the_reconstruction_by_the_pixels_and_keeps_the_kl():
    reconstruction, images, mu, logvar = loss_inputs()
    summed = vae_loss(reconstruction, images, mu, logvar, reduction="sum")
    averaged = vae_loss(reconstruction, images, mu, logvar, reduction="mean")
    torch.testing.assert_close(averaged["reconstruction"], summed["reconstruction"] / (3 * 8 * 8))
    torch.testing.assert_close(averaged["reconstruction"], F.mse_loss(reconstruction, images))
    assert torch.equal(averaged["kl"], summed["kl"])
    torch.testing.assert_close(averaged["loss"], averaged["reconstruction"] + averaged["kl"])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_beta_scales_only_the_kl_term(reduction):
    reconstruction, images, mu, logvar = loss_inputs()
    terms = {beta: vae_loss(reconstruction, images, mu, logvar, reduction=reduction, beta=beta)
             for beta in (0.0, 1.0, 4.0)}
    torch.testing.assert_close(terms[0.0]["loss"], terms[0.0]["reconstruction"])
    torch.testing.assert_close(terms[4.0]["loss"] - terms[1.0]["loss"], 3 * terms[1.0]["kl"])
    assert all(torch.equal(terms[beta]["kl"], terms[1.0]["kl"]) for beta in terms)


def test_vae_loss_refuses_mismatched_shapes_and_unknown_reductions():
    reconstruction, images, mu, logvar = loss_inputs()
    with pytest.raises(ValueError, match=r"reconstruction \(4, 3, 8, 8\) and images \(4, 3, 8, 9\) differ in shape"):
        vae_loss(reconstruction, torch.rand(4, 3, 8, 9), mu, logvar)
    with pytest.raises(ValueError, match=r"expected mu and logvar of the same shape"):
        vae_loss(reconstruction, images, mu, logvar[:, :2])
    with pytest.raises(ValueError, match="Unknown reduction 'none'; choose one of sum, mean"):
        vae_loss(reconstruction, images, mu, logvar, reduction="none")
    with pytest.raises(ValueError, match="Unknown reduction 'batchmean'; choose one of sum, mean"):
        vae_step(reduction="batchmean")


# ---------------------------------------------------------------------------------------------
# vae_step in the Trainer


def train_vae(steps: int, **step_options):
    seed_everything(0)
    model = VAE(4, image_size=28, width=8)
    images = torch.zeros(8, 1, 28, 28)
    for i in range(8):  # a tiny fixed batch of bright squares the model can learn to reconstruct
        images[i, :, 3 * i: 3 * i + 8, 4:20] = 1.0
    loader = DataLoader(TensorDataset(images, torch.zeros(8, dtype=torch.int64)), batch_size=8)
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=3e-3), vae_step(**step_options), device="cpu",
                      progress=False)
    return trainer.fit(loader, steps=steps)


def test_vae_step_logs_the_elbo_terms_and_the_loss_decreases():
    history = train_vae(50)
    assert history.names() == ["loss", "reconstruction", "kl"]
    losses = history.series("loss")[1]
    assert len(losses) == 50 and all(map(math.isfinite, losses))
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0]
    assert sum(losses[-10:]) < sum(losses[-20:-10])  # still falling at the end
    for step in range(50):
        assert history.series("loss")[1][step] == pytest.approx(
            history.series("reconstruction")[1][step] + history.series("kl")[1][step], rel=1e-5)


def test_vae_step_passes_reduction_and_beta_to_the_loss():
    history = train_vae(2, reduction="mean", beta=0.5)
    (first_loss, *_), (first_reconstruction, *_), (first_kl, *_) = (history.series(name)[1]
                                                                     for name in ("loss", "reconstruction", "kl"))
    assert first_reconstruction < 1  # a per-pixel mean of squared errors between [0, 1] images
    assert first_loss == pytest.approx(first_reconstruction + 0.5 * first_kl, rel=1e-5)
