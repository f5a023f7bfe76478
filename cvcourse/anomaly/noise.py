"""Noise for the jump of partial diffusion: white Gaussian noise, or coarse noise with most power at low frequencies.

AnoDDPM (Wyatt et al. 2022, section 3.2) replaces the Gaussian noise of the forward jump (and of training) by
simplex noise of several octaves: white noise hides small details but leaves a large defect's shape visible, so
the model puts the defect back; noise with large blobs hides large structures too. ``pyramid_noise`` is a simple
stand-in with the same spectrum idea: Gaussian noise drawn at 1, 1/2, 1/4 ... of the resolution, upsampled, weighted
by ``persistence ** octave`` and rescaled to unit variance per image, so that ``q_sample``'s scaling still holds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NOISES = ("gaussian", "pyramid")


def pyramid_noise(shape: tuple[int, ...], generator: torch.Generator | None = None, *, octaves: int = 4,
                  persistence: float = 0.8) -> torch.Tensor:
    """Noise of ``shape`` (N, C, H, W): the sum over octaves k = 0 .. ``octaves`` - 1 of N(0, I) at 1 / 2**k of the
    resolution, upsampled bilinearly and weighted ``persistence ** k``; zero mean and unit variance per image."""
    if len(shape) != 4:
        raise ValueError(f"shape must be (N, C, H, W), got {tuple(shape)}.")
    if octaves < 1 or not 0 < persistence <= 1:
        raise ValueError(f"octaves must be >= 1 and persistence in (0, 1], got {octaves} and {persistence}.")
    n, c, h, w = shape
    noise = torch.zeros(shape)
    for octave in range(octaves):
        size = (max(1, h >> octave), max(1, w >> octave))
        coarse = torch.randn((n, c, *size), generator=generator)
        noise += persistence ** octave * F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    noise -= noise.mean(dim=(1, 2, 3), keepdim=True)
    return noise / noise.std(dim=(1, 2, 3), keepdim=True)


def check_noise(kind: str) -> None:
    """A ValueError naming the choices unless ``kind`` is one of ``NOISES``."""
    if kind not in NOISES:
        raise ValueError(f"unknown noise {kind!r}; choose one of {', '.join(NOISES)}.")


def jump_noise(kind: str, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """``"gaussian"`` (N(0, I)) or ``"pyramid"`` (:func:`pyramid_noise`) noise of ``shape``."""
    check_noise(kind)
    return torch.randn(shape, generator=generator) if kind == "gaussian" else pyramid_noise(shape, generator)
