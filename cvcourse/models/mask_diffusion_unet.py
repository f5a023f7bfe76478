"""A noise predictor conditioned on a segmentation mask: the mask's one-hot classes as extra input channels.

The simplest spatial conditioning there is: the class map, one channel per class, is concatenated with the noisy
image, so every pixel of the U-Net's input knows which class it should become; SR3 (Saharia et al. 2022) conditions
on a low-resolution image the same way, and SPADE (Park et al. 2019) and ControlNet (Zhang et al. 2023) are richer
ways of feeding a layout in. For classifier-free guidance (Ho & Salimans 2022) the mask is dropped whole during
training: a map holding only the null class ``num_classes`` gives all-zero channels, "no mask". Since the guidance
code builds its null condition as ``torch.full_like(masks, model.num_classes)``, the samplers of
:mod:`cvcourse.diffusion` sample for given masks with ``labels=masks`` and any ``guidance_scale``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvcourse.models.diffusion_unet import DiffusionUNet


def mask_channels(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class maps (B, H, W) with values in [0, num_classes] -> one-hot channels (B, num_classes, H, W), float.

    A pixel of the null class ``num_classes`` gets zeros in every channel.
    """
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"expected class maps (B, H, W), got {shape}; drop a channel dimension with masks[:, 0].")
    if masks.is_floating_point() or masks.dtype == torch.bool:
        raise ValueError(f"masks must hold integer class indices, got {masks.dtype}; convert with masks.long().")
    if masks.numel() and (masks.min() < 0 or masks.max() > num_classes):
        raise ValueError(f"mask values must lie in [0, {num_classes}] ({num_classes} is the null class, 'no mask'), "
                         f"got values in [{masks.min().item()}, {masks.max().item()}].")
    return F.one_hot(masks.long(), num_classes + 1)[..., :num_classes].permute(0, 3, 1, 2).float()


class MaskDiffusionUNet(nn.Module):
    """``MaskDiffusionUNet(in_channels, num_classes)`` predicts the noise in ``x_t`` (B, C, H, W) given class maps.

    ``forward(x_t, t, masks=None)``: ``masks`` (B, H, W) hold classes in [0, num_classes) for each pixel, or the null
    class ``num_classes`` everywhere (``None`` means all null: the unconditional prediction). The other options build
    the :class:`~cvcourse.models.DiffusionUNet` that reads the image and the mask channels together.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, **unet_options) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2 (a binary mask has 2 classes: background and "
                             f"foreground), got {num_classes!r}.")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.denoiser = DiffusionUNet(in_channels + num_classes, out_channels=in_channels, **unet_options)
        self.timesteps = self.denoiser.timesteps

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x_t: torch.Tensor, t: int | torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        if x_t.ndim != 4 or x_t.shape[1] != self.in_channels:
            raise ValueError(f"this MaskDiffusionUNet takes (B, {self.in_channels}, H, W) images, got shape "
                             f"{tuple(x_t.shape)}.")
        if masks is None:
            masks = torch.full((len(x_t), *x_t.shape[2:]), self.num_classes, dtype=torch.long, device=x_t.device)
        if not isinstance(masks, torch.Tensor) or tuple(masks.shape) != (len(x_t), *x_t.shape[2:]):
            shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise ValueError(f"expected one class map per image, shape {(len(x_t), *x_t.shape[2:])}, got {shape}; "
                             "resize the masks with the images (nearest interpolation).")
        condition = mask_channels(masks, self.num_classes).to(x_t.device, x_t.dtype)
        return self.denoiser(torch.cat([x_t, condition], dim=1), t)
