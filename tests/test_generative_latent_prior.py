"""The Gaussian mixture prior: its fit against scikit-learn's, its samples' moments, determinism, VAE sampling
through it, bad input."""

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from cvcourse.generative.latent_prior import GaussianMixturePrior
from cvcourse.models import VAE


def two_clusters(count: int = 600) -> torch.Tensor:
    """Codes in two well separated clusters, 2/3 and 1/3 of them, each with its own covariance."""
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(2 * count // 3, 2, generator=generator) * torch.tensor([0.5, 0.2]) + torch.tensor([4.0, 0.0])
    second = torch.randn(count // 3, 2, generator=generator) * 0.3 + torch.tensor([-4.0, 1.0])
    return torch.cat([first, second])


def test_fit_matches_scikit_learn_and_recovers_the_clusters():
    codes = two_clusters()
    prior = GaussianMixturePrior.fit(codes, components=2, seed=3)
    reference = GaussianMixture(2, covariance_type="full", random_state=3).fit(codes.double().numpy())
    np.testing.assert_allclose(prior.weights.numpy(), reference.weights_, rtol=1e-6)
    np.testing.assert_allclose(prior.means.numpy(), reference.means_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prior.covariances.numpy(), reference.covariances_, rtol=1e-5, atol=1e-7)
    order = prior.means[:, 0].argsort(descending=True)  # the cluster at x = 4 first
    torch.testing.assert_close(prior.weights[order], torch.tensor([2 / 3, 1 / 3]), atol=1e-3, rtol=0)
    torch.testing.assert_close(prior.means[order], torch.tensor([[4.0, 0.0], [-4.0, 1.0]]), atol=0.1, rtol=0)


def test_samples_have_the_mixtures_mean_and_covariance():
    weights = torch.tensor([0.25, 0.75])
    means = torch.tensor([[2.0, -1.0], [-1.0, 0.5]])
    covariances = torch.tensor([[[1.0, 0.6], [0.6, 0.5]], [[0.2, 0.0], [0.0, 2.0]]])
    prior = GaussianMixturePrior(weights, means, covariances)
    z = prior.sample(200_000, generator=torch.Generator().manual_seed(0))
    mean = (weights[:, None] * means).sum(0)
    second_moment = (weights[:, None, None] * (covariances + means[:, :, None] * means[:, None, :])).sum(0)
    torch.testing.assert_close(z.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), second_moment - torch.outer(mean, mean), atol=0.03, rtol=0)


def test_sampling_is_deterministic_under_a_generator():
    prior = GaussianMixturePrior.fit(two_clusters(), components=2)
    first = prior.sample(50, generator=torch.Generator().manual_seed(1))
    assert first.shape == (50, 2) and first.dtype == torch.float32
    assert torch.equal(first, prior.sample(50, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(first, prior.sample(50, generator=torch.Generator().manual_seed(2)))


def test_a_vae_samples_through_the_prior():
    torch.manual_seed(0)
    model = VAE(2, width=8)
    prior = GaussianMixturePrior.fit(two_clusters(), components=2)
    images = model.sample(6, generator=torch.Generator().manual_seed(4), prior=prior)
    with torch.no_grad():
        expected = model.decode(prior.sample(6, generator=torch.Generator().manual_seed(4)))
    torch.testing.assert_close(images, expected)
    with pytest.raises(ValueError, match=r"latents of shape \(B, 3\)"):
        VAE(3, width=8).sample(2, prior=prior)


@pytest.mark.parametrize("codes", [torch.randn(10), torch.randn(2, 3, 4), torch.arange(20).view(10, 2), [[0.0, 1.0]]])
def test_codes_that_are_not_a_float_matrix_are_refused(codes):
    with pytest.raises(ValueError, match=r"codes must be a float tensor of shape \(N, latent_dim\)"):
        GaussianMixturePrior.fit(codes)


@pytest.mark.parametrize("components", [0, 11])
def test_component_count_outside_one_to_n_is_refused(components):
    with pytest.raises(ValueError, match=r"components must lie in \[1, 10\]"):
        GaussianMixturePrior.fit(torch.randn(10, 2), components=components)


def test_mismatched_parameters_and_a_bad_count_are_refused():
    with pytest.raises(ValueError, match="must agree"):
        GaussianMixturePrior(torch.ones(2) / 2, torch.zeros(3, 2), torch.eye(2).expand(3, 2, 2))
    prior = GaussianMixturePrior(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
    with pytest.raises(ValueError, match="count must be at least 1"):
        prior.sample(0)
