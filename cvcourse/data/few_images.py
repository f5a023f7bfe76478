"""Making the most of a few images held in memory: their exact symmetries, their crops, and repeating them whole to
fill a batch. Each function takes images (N, C, H, W) and, passed alongside, their masks (N, H, W), and moves the
masks with their images."""

from __future__ import annotations

import torch


def symmetries(*tensors: torch.Tensor, upright: bool = False) -> tuple[torch.Tensor, ...]:
    """Every image (and its mask, passed alongside, in the same order) with its left-right flip and, unless the
    images are ``upright``, its quarter turns: eight copies (two when upright), exact, no interpolation."""
    def copies(tensor: torch.Tensor) -> torch.Tensor:
        turned = [torch.rot90(tensor, k, dims=(-2, -1)) for k in range(1 if upright else 4)]
        return torch.cat(turned + [copy.flip(-1) for copy in turned])

    return tuple(copies(tensor) for tensor in tensors)


def crops(*tensors: torch.Tensor, width: int, stride: int) -> tuple[torch.Tensor, ...]:
    """Every ``width``-pixel-wide crop of the images (and of their masks, passed alongside, in the same order) whose
    left edge is a multiple of ``stride``, full height."""
    full = tensors[0].shape[-1]
    if not 1 <= width <= full or stride < 1:
        raise ValueError(f"crops need 1 <= width <= the image width ({full}) and stride >= 1, got width {width} and "
                         f"stride {stride}.")
    return tuple(torch.cat([tensor[..., left:left + width] for left in range(0, full - width + 1, stride)])
                 for tensor in tensors)


def repeated(tensors: tuple[torch.Tensor, ...], at_least: int) -> tuple[torch.Tensor, ...]:
    """The tensors repeated whole until they hold ``at_least`` items, so that a few images fill a batch."""
    copies = -(-at_least // len(tensors[0]))
    return tuple(tensor.repeat(copies, *[1] * (tensor.ndim - 1)) for tensor in tensors)
