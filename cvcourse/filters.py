"""Classical denoisers: the Gaussian filter, the median filter, and a filter's strength tuned on images whose clean
versions are known.

A Gaussian filter averages each pixel with its neighbours, weighted by ``exp(-d^2 / (2 blur_sigma^2))``: noise
averages out, and so do edges. A median filter takes the middle value of each ``size`` x ``size`` window: an edge
survives (half the window still lies on each side of it), isolated outliers do not. Neither knows what a scene looks
like, so each has one knob, its strength, traded between noise left and detail lost: :func:`tune_filter` picks it by
the peak signal-to-noise ratio (PSNR) on a few images of a tuning split, once per noise level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur

from cvcourse.generative.metrics import check_images, psnr


def gaussian_filter(images: torch.Tensor, blur_sigma: float) -> torch.Tensor:
    """Images (N, C, H, W) blurred by a Gaussian of standard deviation ``blur_sigma`` pixels, with a kernel of
    ``2 ceil(3 blur_sigma) + 1`` pixels (three standard deviations each side); ``blur_sigma = 0`` changes nothing."""
    if isinstance(blur_sigma, bool) or not isinstance(blur_sigma, (int, float)) or not 0 <= blur_sigma < math.inf:
        raise ValueError(f"blur_sigma is the Gaussian's standard deviation in pixels and must be >= 0, got "
                         f"{blur_sigma!r}; e.g. 1.0, or 0 for no blur.")
    if blur_sigma == 0:
        return images.clone()
    kernel = 2 * math.ceil(3 * blur_sigma) + 1
    return gaussian_blur(images, [kernel, kernel], [blur_sigma, blur_sigma])


def median_filter(images: torch.Tensor, size: int, *, chunk_size: int = 16) -> torch.Tensor:
    """Images (N, C, H, W) with every pixel replaced by the median of the ``size`` x ``size`` window around it, per
    channel; the borders are mirrored (``scipy.ndimage.median_filter(..., mode="mirror")``).

    ``unfold`` turns each image into the stack of its windows, one per pixel, without copying; the median of a
    stack is one call. Copying the stacks for the median takes ``size^2`` times the images' memory, so the images go
    ``chunk_size`` at a time.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd int >= 1 (the window has a centre pixel), got {size!r}; e.g. 3 or 5.")
    if images.ndim != 4 or min(images.shape[-2:]) <= size // 2:
        raise ValueError(f"median_filter takes a batch (N, C, H, W) of images larger than half the window ({size}), "
                         f"got shape {tuple(images.shape)}; add a batch dimension with images.unsqueeze(0).")
    half = size // 2
    filtered = []
    for chunk in images.split(chunk_size):
        padded = F.pad(chunk, (half, half, half, half), mode="reflect")
        windows = padded.unfold(2, size, 1).unfold(3, size, 1)  # (n, C, H, W, size, size)
        filtered.append(windows.flatten(-2).median(dim=-1).values)
    return torch.cat(filtered)


def tune_filter(denoise: Callable[[torch.Tensor, float], torch.Tensor], strengths: Sequence[float],
                noisy: torch.Tensor, clean: torch.Tensor) -> float:
    """The strength of ``strengths`` at which ``denoise(noisy, strength)`` comes closest to ``clean``: the highest
    mean PSNR. ``noisy`` and ``clean`` are the same tuning images (N, C, H, W) in [0, 1], never test images."""
    check_images(clean, clean.shape[1] if clean.ndim == 4 else 3, name="the clean tuning images")
    check_images(noisy, clean.shape[1], tuple(clean.shape[-2:]), name="the noisy tuning images")
    if len(noisy) != len(clean) or not strengths:
        raise ValueError(f"tune_filter needs one noisy image per clean image and at least one strength to try, got "
                         f"{len(noisy)} noisy and {len(clean)} clean images and strengths {list(strengths)}.")
    scores = [psnr(denoise(noisy, strength).clamp(0, 1), clean).mean().item() for strength in strengths]
    return strengths[max(range(len(strengths)), key=scores.__getitem__)]
