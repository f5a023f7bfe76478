"""Inpainting with an unconditional diffusion model: RePaint (Lugmayr et al., CVPR 2022).

The model never saw a mask. At every reverse step the pixels to keep are replaced by the original image noised
to the same timestep, so the generated part has to agree with them (Algorithm 1, lines 4 to 8)::

    x_known_prev   = q_sample(x_0, t_prev)                      the kept pixels, noised to t_prev
    x_unknown_prev = reverse step from x_t                      the model's proposal everywhere
    x_prev         = keep * x_known_prev + (1 - keep) * x_unknown_prev

Pasting alone leaves seams: the proposal was made before it could see the pasted pixels. RePaint's fix is to
resample: noise ``x_prev`` back to ``t`` with the forward process, ``q(x_t | x_prev)``, and take the step again,
``resample`` times in all, so that the two parts harmonise (section 4.2). The reverse step here is DDPM's
ancestral step between two timesteps of a (trailing) DDIM grid, DDIM with eta = 1, so ``steps`` can be far
fewer than T.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from cvcourse.diffusion.forward import gaussian, q_sample
from cvcourse.diffusion.guidance import EpsModel, eps_theta
from cvcourse.diffusion.samplers import ddim_step, ddim_timesteps
from cvcourse.diffusion.schedules import NoiseSchedule


def renoise(schedule: NoiseSchedule, x_prev: torch.Tensor, t_prev: int, t: int, noise: torch.Tensor) -> torch.Tensor:
    """``q(x_t | x_prev)`` for ``t > t_prev``: ``sqrt(alpha_bar_t / alpha_bar_prev) x_prev + sqrt(1 - that) z``.

    The forward process between two timesteps of a grid (eq. 2 of Ho et al. 2020 over several steps);
    ``t_prev = -1`` starts from the clean image.
    """
    ratio = schedule.alpha_bar_at(t, x_prev) / schedule.alpha_bar_at(t_prev, x_prev)
    return ratio.sqrt() * x_prev + (1 - ratio).sqrt() * noise


def _check_keep(keep: torch.Tensor, x0: torch.Tensor) -> None:
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool:
        raise ValueError("keep must be a bool tensor, True on the pixels to keep and False on those to generate; "
                         f"got {keep.dtype if isinstance(keep, torch.Tensor) else type(keep).__name__}.")
    if keep.ndim != 4 or keep.shape[-2:] != x0.shape[-2:] or keep.shape[0] not in (1, len(x0)) \
            or keep.shape[1] not in (1, x0.shape[1]):
        raise ValueError(f"keep must broadcast over the images {tuple(x0.shape)}: shape (B or 1, 1, H, W), got "
                         f"{tuple(keep.shape)}; add dimensions with keep[:, None] or keep[None, None].")


@torch.no_grad()
def repaint(model: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, keep: torch.Tensor, *, steps: int = 50,
            resample: int = 1, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
            clip_x0: bool = True, progress: bool = False) -> torch.Tensor:
    """Fill the pixels where ``keep`` is False with the model's content, consistent with the rest of ``x0``.

    ``x0`` (B, C, H, W) is in the model's range ([-1, 1] for images); ``keep`` a bool mask (B or 1, 1, H, W).
    ``steps`` reverse steps on the trailing grid, each taken ``resample`` times (RePaint's U; the paper uses 250
    steps, U = 10 and jumps of 10 steps; one step back suffices on a short grid). Returns x_0 with the kept pixels
    exactly those of ``x0``. Costs ``steps * resample`` model evaluations.
    """
    _check_keep(keep, x0)
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be an int >= 1 (1 = paste only, no resampling), got {resample!r}.")
    timesteps = ddim_timesteps(schedule.T, steps)
    keep = keep.to(x0.device)
    x = gaussian(x0.shape, generator, x0)
    for t, t_prev in tqdm(zip(timesteps, timesteps[1:] + [-1]), total=len(timesteps), disable=not progress,
                          desc="RePaint", unit="step"):
        for attempt in range(resample):
            eps = eps_theta(model, x, t, labels)
            unknown = ddim_step(schedule, x, t, t_prev, eps, eta=1.0, noise=gaussian(x.shape, generator, x),
                                clip_x0=clip_x0)
            known = x0 if t_prev < 0 else q_sample(schedule, x0, t_prev, gaussian(x.shape, generator, x))
            x_prev = torch.where(keep, known, unknown)
            if attempt < resample - 1:
                x = renoise(schedule, x_prev, t_prev, t, gaussian(x.shape, generator, x))
        x = x_prev
    return x
