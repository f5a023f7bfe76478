"""The GAN objective (Goodfellow et al. 2014) and its non-saturating form, written on discriminator logits.

The discriminator D maximises ``E[log D(x)] + E[log(1 - D(G(z)))]`` (eq. 1 of the paper); as a loss to
minimise that is binary cross-entropy with real = 1 and fake = 0. The generator, in the original
minimax game, minimises ``E[log(1 - D(G(z)))]``; early in training D rejects every fake, that term is
flat and its gradient vanishes ("saturates"). The paper's fix, used by every GAN since, is the
non-saturating loss: maximise ``E[log D(G(z))]``, i.e. BCE of the fakes against the label 1.

Every function takes logits (before the sigmoid): ``F.binary_cross_entropy_with_logits`` computes
``log sigmoid`` stably, where ``torch.log(torch.sigmoid(x))`` underflows to -inf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GENERATOR_LOSSES = ("non_saturating", "minimax")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-E[log D(x)] - E[log(1 - D(G(z)))]``: BCE with real images labelled 1 and fakes labelled 0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The generator's loss on D's logits for its fakes.

    ``non_saturating``: ``-E[log D(G(z))]`` (BCE against 1), strong gradients when D wins;
    ``minimax``: ``E[log(1 - D(G(z)))]`` (minus BCE against 0), the original game, flat when D wins.
    """
    if kind == "non_saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "minimax":
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    raise ValueError(f"Unknown generator loss {kind!r}; choose one of {', '.join(GENERATOR_LOSSES)}.")


def gan_step(loss: str = "non_saturating", *, conditional: bool = False, d_steps: int = 1):
    """The Trainer step of a (conditional) GAN on ``(images in [0, 1], labels)`` batches.

    Per batch: ``d_steps`` discriminator updates on real images (mapped to [-1, 1]) and fresh fakes, then one
    generator update through the discriminator. Logs both losses and D's mean belief on real and fake images.
    """
    if loss not in GENERATOR_LOSSES:
        raise ValueError(f"Unknown generator loss {loss!r}; choose one of {', '.join(GENERATOR_LOSSES)}.")
    if d_steps < 1:
        raise ValueError(f"d_steps must be >= 1 (discriminator updates per generator update), got {d_steps}.")

    def step(batch, ctx):
        images, labels = batch
        real, labels = images * 2 - 1, labels if conditional else None
        G, D = ctx.models["G"], ctx.models["D"]
        for _ in range(d_steps):
            z = torch.randn(len(real), G.latent_dim, device=real.device)
            with ctx.autocast():
                fake = G(z, labels)
                real_logits, fake_logits = D(real, labels), D(fake.detach(), labels)
                d_loss = discriminator_loss(real_logits, fake_logits)
            ctx.optimize(d_loss, "D")
        with ctx.autocast():
            g_loss = generator_loss(D(fake, labels), loss)
        ctx.optimize(g_loss, "G")
        return {"d_loss": d_loss, "g_loss": g_loss, "D(x)": torch.sigmoid(real_logits.detach()).mean(),
                "D(G(z))": torch.sigmoid(fake_logits.detach()).mean()}

    return step
