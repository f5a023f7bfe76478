"""A Gaussian mixture fitted to a VAE's codes, to sample from instead of N(0, I).

The ELBO pulls every posterior ``q(z | x)`` towards the prior N(0, I), but the codes of the training images,
the aggregate posterior ``q(z) = E_x q(z | x)``, do not fill it: the prior puts mass on regions between the
clusters of codes ("holes") that no training image encodes to, and the decoder turns them into blends of
glyphs. Ex-post density estimation (Ghosh et al. 2020, "From Variational to Deterministic Autoencoders",
section 4) fits a density to the training codes after training and samples from it instead. A Gaussian
mixture with one component per class is the simplest choice; scikit-learn fits it by EM.
"""

from __future__ import annotations

import torch


def _check_codes(codes: torch.Tensor) -> None:
    if not isinstance(codes, torch.Tensor) or codes.ndim != 2 or not codes.is_floating_point():
        shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
        raise ValueError(f"codes must be a float tensor of shape (N, latent_dim), e.g. vae.encode(images)[0]; "
                         f"got {shape}.")


class GaussianMixturePrior:
    """``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D) of a full-covariance Gaussian mixture."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor) -> None:
        components, dim = means.shape
        if weights.shape != (components,) or covariances.shape != (components, dim, dim):
            raise ValueError(f"weights (K,), means (K, D) and covariances (K, D, D) must agree, got "
                             f"{tuple(weights.shape)}, {tuple(means.shape)} and {tuple(covariances.shape)}.")
        self.weights, self.means, self.covariances = weights.float(), means.float(), covariances.float()
        self.scale_tril = torch.linalg.cholesky(self.covariances)  # z = mean + L @ eps has covariance L L^T

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def fit(cls, codes: torch.Tensor, components: int = 10, *, seed: int = 0) -> "GaussianMixturePrior":
        """Fit ``components`` full-covariance Gaussians to ``codes`` (N, D) by EM (scikit-learn, k-means start)."""
        from sklearn.mixture import GaussianMixture

        _check_codes(codes)
        if not 1 <= components <= len(codes):
            raise ValueError(f"components must lie in [1, {len(codes)}] (the number of codes), got {components}.")
        mixture = GaussianMixture(components, covariance_type="full", random_state=seed)
        mixture.fit(codes.detach().double().cpu().numpy())
        return cls(*(torch.from_numpy(value) for value in (mixture.weights_, mixture.means_, mixture.covariances_)))

    def sample(self, count: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` codes (count, D): a component drawn by its weight, then ``mean + L @ eps``, ``eps ~ N(0, I)``."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}.")
        component = torch.multinomial(self.weights, count, replacement=True, generator=generator)
        eps = torch.randn(count, self.latent_dim, 1, generator=generator)
        return self.means[component] + (self.scale_tril[component] @ eps).squeeze(2)
