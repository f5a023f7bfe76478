"""What happens to an image between a generator and a detector: storage formats and everyday degradations.

A detector of generated images sees files, not tensors. Saving as PNG rounds every pixel to 8 bits and loses
nothing else; saving as JPEG also quantises 8x8 blocks of frequencies (Wallace 1992), which leaves block edges and
smoothed detail behind. If the real images of a dataset are JPEG and the generated ones PNG (GenImage; DIRE's
published maps kept their input's format), a detector can score the format instead of the generator
(Ricker et al. 2024; Grommelt et al. 2024). Resizing and mild noise are what social media does to both sides.
Every function takes and returns float images (N, C, H, W) in [0, 1].
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from cvcourse.generative.metrics import check_images


def check_batch(images: torch.Tensor, what: str) -> None:
    """Raise unless ``images`` is a float batch of grey or RGB images (N, 1 or 3, H, W) in [0, 1]: ``check_images``
    with either channel count."""
    channels = images.shape[1] if isinstance(images, torch.Tensor) and images.ndim == 4 else 1
    if channels not in (1, 3):
        raise ValueError(f"{what} takes grey or RGB images (N, 1 or 3, H, W), got {tuple(images.shape)}.")
    check_images(images, channels, name=f"the images given to {what}")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] rounded to 8-bit integers, as every image file stores them."""
    return (images * 255).round().to(torch.uint8)


def png_round_trip(images: torch.Tensor) -> torch.Tensor:
    """Saved as PNG and read back: lossless, so only the rounding to 8 bits per pixel."""
    check_batch(images, "png_round_trip")
    return to_uint8(images).float() / 255


def jpeg_round_trip(images: torch.Tensor, quality: int = 96) -> torch.Tensor:
    """Saved as JPEG at ``quality`` (1 to 100; GenImage's real images are JPEG at about 96) and read back."""
    check_batch(images, "jpeg_round_trip")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int from 1 to 100, got {quality!r}.")
    restored = []
    for picture in to_uint8(images.cpu()).permute(0, 2, 3, 1).numpy():  # (H, W, C) uint8 each, as PIL reads them
        file = io.BytesIO()
        Image.fromarray(picture.squeeze(-1) if picture.shape[-1] == 1 else picture).save(file, "JPEG", quality=quality)
        restored.append(torch.from_numpy(np.array(Image.open(file))).reshape(picture.shape))
    return torch.stack(restored).permute(0, 3, 1, 2).float().to(images.device) / 255


def resize_round_trip(images: torch.Tensor, size: int) -> torch.Tensor:
    """Shrunk (or enlarged) to ``size`` x ``size`` with antialiasing and back to the original size, bilinearly."""
    check_batch(images, "resize_round_trip")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (pixels), got {size!r}.")
    small = TF.resize(images, [size, size], antialias=True)
    return TF.resize(small, list(images.shape[-2:]), antialias=True).clamp(0, 1)


def noisy(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise of standard deviation ``sigma`` added, then clipped back to [0, 1]."""
    check_batch(images, "noisy")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}.")
    noise = torch.randn(images.shape, generator=generator).to(images.device)
    return (images + sigma * noise).clamp(0, 1)
