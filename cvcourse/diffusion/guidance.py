"""Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance").

One network learns both the conditional ``eps_theta(x_t, t, c)`` and the unconditional ``eps_theta(x_t, t)``:
during training the label is replaced by a *null label* with probability ``p_uncond`` (0.1-0.2 in the paper).
At sampling time the two predictions are extrapolated away from the unconditional one (eq. 6)::

    eps_tilde = (1 + w) eps_theta(x_t, t, c) - w eps_theta(x_t, t)

``w = 0`` is the plain conditional model; larger ``w`` trades diversity for fidelity to the label (the
paper's FID/IS trade-off, Fig. 4). The null label is the integer ``num_classes``: a class-conditional model
has one extra row in its label embedding for it, and exposes ``model.num_classes`` so that the functions here
can find it. Labels therefore lie in [0, num_classes], the last value meaning "no label".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

EpsModel = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """``(1 + w) eps_cond - w eps_uncond`` (Ho & Salimans 2022, eq. 6): w = 0 is conditional, w = -1 unconditional."""
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"eps_cond and eps_uncond must have the same shape, got {tuple(eps_cond.shape)} and "
                         f"{tuple(eps_uncond.shape)}.")
    return (1 + w) * eps_cond - w * eps_uncond


def null_label(model: object) -> int:
    """The null ("no label") class of a class-conditional model: its ``num_classes``.

    A wrapped model, such as the EMA copy ``torch.optim.swa_utils.AveragedModel`` keeps in ``.module``, works too.
    """
    num_classes = getattr(model, "num_classes", getattr(getattr(model, "module", None), "num_classes", None))
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"classifier-free guidance needs a class-conditional model with an int attribute "
                         f"num_classes (its null label), got num_classes={num_classes!r}; build e.g. "
                         "DiffusionUNet(num_classes=10).")
    return num_classes


def eps_theta(model: EpsModel, x_t: torch.Tensor, t: int | torch.Tensor, labels: torch.Tensor | None = None,
              guidance_scale: float = 0.0) -> torch.Tensor:
    """The model's noise prediction at ``(x_t, t)``, guided by ``guidance_scale`` (w) when it is not 0.

    With guidance, the conditional and the unconditional predictions come from one forward pass of a doubled
    batch (the labels, then as many null labels): one large pass keeps a GPU busier than two small ones.
    """
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) \
            or not math.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}; 0 means no guidance.")
    t = torch.as_tensor(t, device=x_t.device).expand(len(x_t))
    if guidance_scale == 0:
        return model(x_t, t, labels)
    if labels is None:
        raise ValueError("guidance_scale != 0 needs labels to guide towards; pass labels=... or guidance_scale=0.")
    null = torch.full_like(labels, null_label(model))
    eps_cond, eps_uncond = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
    return guided_eps(eps_cond, eps_uncond, guidance_scale)
