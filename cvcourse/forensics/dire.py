"""DIRE, the diffusion reconstruction error (Wang et al., ICCV 2023): does a diffusion model know this image?

Invert an image to noise with deterministic DDIM and sample it back (``ddim_reconstruct``): an image the model
could have generated lies on the paths its sampler follows and comes back almost exactly; a real image comes back
less so (eq. 5)::

    DIRE(x_0) = |x_0 - R(I(x_0))|

DIRE feeds that error image to a classifier (a ResNet-50 in the paper); its mean is a training-free score. It
needs the diffusion model, or one like it: the error says how well *this* model reconstructs the image.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from cvcourse.diffusion.forward import to_diffusion_range, to_image_range
from cvcourse.diffusion.guidance import EpsModel
from cvcourse.diffusion.reconstruction import ddim_reconstruct
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.forensics.formats import check_batch


@torch.no_grad()
def dire_maps(model: EpsModel, schedule: NoiseSchedule, images: torch.Tensor, *, steps: int = 20,
              batch_size: int = 256, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """DIRE images ``|x - R(I(x))|`` (N, C, H, W) of ``images`` in [0, 1], and their reconstructions in [0, 1].

    Inversion and sampling each take ``steps`` DDIM steps (DIRE uses 20), so 2 * ``steps`` network evaluations
    per image.
    """
    check_batch(images, "dire_maps")
    device = next(model.parameters()).device
    schedule = schedule.to(device)
    reconstructions = []
    for batch in tqdm(images.split(batch_size), desc="DIRE", unit="batch", disable=not progress):
        x0 = to_diffusion_range(batch).to(device)
        reconstructions.append(to_image_range(ddim_reconstruct(model, schedule, x0, steps=steps)).cpu())
    reconstructions = torch.cat(reconstructions)
    return (images - reconstructions).abs(), reconstructions


def mean_scores(maps: torch.Tensor) -> torch.Tensor:
    """One training-free score per image: its error map's mean (N,)."""
    if maps.ndim not in (3, 4):
        raise ValueError(f"maps must be (N, H, W) or (N, C, H, W), got shape {tuple(maps.shape)}.")
    return maps.flatten(1).mean(1)
