"""Reconstructing an image through the diffusion: DDIM inversion and partial diffusion.

DDIM inversion (Song et al. 2021, sections 4.3 and 5.4): with eta = 0, DDIM's
update is a discretised ODE, so it can be run backwards, from x_0 up to x_T, with the same step::

    x_{t_next} = sqrt(alpha_bar_next) x0_pred(x_t) + sqrt(1 - alpha_bar_next) eps_theta(x_t, t)

Each step uses the noise predicted where it starts, ``eps_theta(x_t, t)``, as guided-diffusion's
``ddim_reverse_sample`` (used by DIRE) does. The sampler, going down, uses the prediction at the other end of
the same interval, so sampling from the inverted x_T gives back x_0 only approximately: the two predictions
agree as the steps get small and the model smooth. (diffusers' ``DDIMInverseScheduler`` uses
``eps_theta(x_t, t_next)`` instead; it doubled the reconstruction error in our measurements.) How well the
round trip works tells whether the model "knows" an image: DIRE (Wang et al. 2023) detects generated images
by their small reconstruction error |x_0 - x_0'|.

Partial diffusion (SDEdit, Meng et al. 2022; AnoDDPM, Wyatt et al. 2022) noises x_0 only to an intermediate
``t_start`` with ``q_sample`` and runs the sampler from there: the coarse structure survives, details are
regenerated, and what the model has never seen (an anomaly) is replaced by what it finds typical.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from cvcourse.diffusion.forward import gaussian, q_sample
from cvcourse.diffusion.guidance import EpsModel, eps_theta
from cvcourse.diffusion.samplers import (
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
)
from cvcourse.diffusion.schedules import NoiseSchedule, check_timestep


@torch.no_grad()
def ddim_invert(model: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, *, steps: int = 50,
                labels: torch.Tensor | None = None, t_end: int | None = None, progress: bool = False) -> torch.Tensor:
    """x_0 -> x_T: deterministic DDIM run backwards through ``ddim_timesteps(T, steps, t_end, "leading")`` in
    increasing order.

    The first step, from the clean image to the lowest timestep, is eq. 4 with the predicted noise; the others
    are ``ddim_step`` with ``t_prev > t``. No clipping: the inversion must stay invertible, which is also why it
    runs on the leading grid (see ``ddim_timesteps``). Returns the sample at ``t_end`` (default: the top of that
    grid, where ``ddim_reconstruct`` starts sampling back).
    """
    if t_end is not None:
        check_timestep(t_end, schedule.T, "t_end")
    timesteps = ddim_timesteps(schedule.T, steps, t_end, spacing="leading")[::-1]
    x = q_sample(schedule, x0, timesteps[0], eps_theta(model, x0, timesteps[0], labels))
    for t, t_next in tqdm(zip(timesteps, timesteps[1:]), total=len(timesteps) - 1, disable=not progress,
                          desc="DDIM inversion", unit="step"):
        x = ddim_step(schedule, x, t, t_next, eps_theta(model, x, t, labels), clip_x0=False)
    return x


def ddim_reconstruct(model: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, *, steps: int = 50,
                     labels: torch.Tensor | None = None, t_end: int | None = None, clip_x0: bool = False,
                     progress: bool = False) -> torch.Tensor:
    """x_0 -> x_T -> x_0': ``ddim_invert`` then deterministic ``ddim_sample`` back, through the same timesteps.

    ``|x0 - ddim_reconstruct(...)|`` is DIRE's feature. Clipping is off by default so that both directions run
    the same ODE (clipping changes the noise the sampler uses, and doubled the error in our measurements).
    """
    x_T = ddim_invert(model, schedule, x0, steps=steps, labels=labels, t_end=t_end, progress=progress)
    return ddim_sample(model, schedule, x0.shape, steps=steps, labels=labels, clip_x0=clip_x0, x_T=x_T,
                       t_start=t_end, spacing="leading", progress=progress)


def partial_diffusion(model: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, t_start: int, *,
                      steps: int | None = None, eta: float = 0.0, labels: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                      clip_x0: bool = True, progress: bool = False) -> torch.Tensor:
    """Noise ``x0`` to ``t_start`` (``q_sample``), then denoise it back to x_0.

    ``steps=None`` runs DDPM through all ``t_start + 1`` timesteps (AnoDDPM); an int runs DDIM with ``eta``
    from ``t_start`` onto the grid of ``steps`` timesteps over [0, T) (so fewer steps than ``steps``).
    ``noise`` replaces the N(0, I) noise of the first jump (AnoDDPM uses simplex noise there).
    """
    if steps is None and eta != 0:
        raise ValueError(f"eta={eta} is a DDIM setting, but steps=None asks for DDPM; pass steps=... for DDIM.")
    check_timestep(t_start, schedule.T, "t_start")
    x_t = q_sample(schedule, x0, t_start, gaussian(x0.shape, generator, x0) if noise is None else noise)
    common = dict(labels=labels, generator=generator, clip_x0=clip_x0, x_T=x_t, t_start=t_start, progress=progress)
    if steps is None:
        return ddpm_sample(model, schedule, x0.shape, **common)
    return ddim_sample(model, schedule, x0.shape, steps=steps, eta=eta, **common)
