"""Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself").

Classifier-free guidance extrapolates from an unconditional prediction towards a conditional one, so it needs
labels. Autoguidance extrapolates from a *worse model* of the same data towards the good one (eq. 2,
``D_w = w D_1 + (1 - w) D_0``): the guide is the same kind of network, smaller and trained for less time. Its
errors are the good model's errors, only larger, so moving away from its prediction moves away from those errors
(blurred, half-formed images) without narrowing the distribution the way a large CFG scale does. It works for an
unconditional model. In the noise parameterisation, and with this course's ``w`` (the paper's ``w`` minus 1)::

    eps_tilde = (1 + w) eps_good(x_t, t) - w eps_guide(x_t, t)

the same extrapolation as classifier-free guidance (:func:`guidance.guided_eps`); ``w = 0`` is the good model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cvcourse.diffusion.guidance import guided_eps


class AutoGuided(nn.Module):
    """A noise predictor ``(1 + w) model - w guide``: pass it to any sampler in place of ``model``.

    ``scale`` (w) is kept as a buffer, so it is part of the state dict, and of any cache key made from it.
    Both networks must take the same ``(x_t, t, labels)`` and be in ``eval()`` mode for sampling.
    """

    def __init__(self, model: nn.Module, guide: nn.Module, scale: float) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
            raise ValueError(f"scale must be a finite number >= 0, got {scale!r}; 0 is the model alone, and chapter 06 "
                             "sweeps 0.5 to 2.")
        if model is guide:
            raise ValueError("the guide must be a separate, weaker model (smaller, trained for less time); "
                             "guiding a model with itself changes nothing.")
        self.model, self.guide = model, guide
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x_t: torch.Tensor, t: int | torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        eps = self.model(x_t, t, labels)
        if self.scale == 0:
            return eps
        return guided_eps(eps, self.guide(x_t, t, labels), self.scale.item())
