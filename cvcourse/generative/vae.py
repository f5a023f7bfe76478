"""The variational autoencoder's loss (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

The encoder gives a diagonal Gaussian ``q(z | x) = N(mu, diag(exp(logvar)))``; the decoder maps ``z`` back
to an image. Training maximises the evidence lower bound (ELBO, eq. 3)::

    log p(x) >= E_q[log p(x | z)] - KL(q(z | x) || N(0, I))

With a Gaussian likelihood of fixed variance, ``-log p(x | z)`` is, up to constants, a *sum* of squared
errors over the pixels, ``sum ||G(z) - x||^2``; the KL of two Gaussians has a closed form (Appendix B).
Both terms are sums over dimensions: averaging the reconstruction over pixels instead (``mse_loss`` with
its default ``reduction="mean"``) shrinks it by the number of pixels, the KL term wins, and the decoder
learns to output the blurry average digit. Chapter 04 measures that pitfall.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("sum", "mean")


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per sample, summed over the latent dimensions: shape (B,).

    Appendix B: ``-1/2 * sum(1 + logvar - mu^2 - exp(logvar))``. Latents of any shape (B, ...) work: a spatial
    latent map (B, C, h, w) is summed over all its values.
    """
    if mu.shape != logvar.shape or mu.ndim < 2:
        raise ValueError(f"expected mu and logvar of the same shape (B, latent_dim) or (B, C, h, w), got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}.")
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=tuple(range(1, mu.ndim)))


def vae_loss(reconstruction: torch.Tensor, images: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
             reduction: str = "sum", beta: float = 1.0) -> dict[str, torch.Tensor]:
    """The negative ELBO per image: ``sum ||G(z) - x||^2 + beta * KL``, averaged over the batch.

    ``reduction="mean"`` averages the squared error over pixels instead of summing it: the pitfall the
    chapter measures (the same KL now weighs ``C*H*W`` times more). Returns ``loss``, ``reconstruction``
    and ``kl``, each a per-image average over the batch.
    """
    if reconstruction.shape != images.shape:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and images {tuple(images.shape)} differ in "
                         "shape.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"Unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}.")
    squared_error = (reconstruction - images).pow(2).flatten(1)
    reconstruction_term = squared_error.sum(1) if reduction == "sum" else squared_error.mean(1)
    kl = gaussian_kl(mu, logvar)
    return {"loss": (reconstruction_term + beta * kl).mean(), "reconstruction": reconstruction_term.mean(),
            "kl": kl.mean()}


def vae_step(*, reduction: str = "sum", beta: float = 1.0):
    """The Trainer step of a VAE on ``(images in [0, 1], labels)`` batches (labels unused): minimise -ELBO."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"Unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}.")

    def step(batch, ctx):
        images = batch[0]
        with ctx.autocast():
            reconstruction, mu, logvar = ctx.model(images)
            return vae_loss(reconstruction.float(), images, mu.float(), logvar.float(), reduction=reduction,
                            beta=beta)

    return step
