"""Labelling pixels with a diffusion model's features: DatasetGAN's idea (Zhang et al., CVPR 2021) on a DDPM, as in
"Label-Efficient Semantic Segmentation with Diffusion Models" (Baranchuk et al., ICLR 2022).

A network that restores images from noise has learned where their parts are. Noise an image a little (timestep
``t``, eq. 4 of Ho et al. 2020), run the noise predictor once and keep the feature maps of its expanding path;
upsampled to the image's size and stacked, they describe every pixel. A small per-pixel classifier (1x1
convolutions: one MLP applied at every pixel) trained on a few labelled images then labels any image, including the
model's own samples: image-mask pairs from an unconditional generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cvcourse.diffusion.forward import gaussian, q_sample, to_diffusion_range
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.generative.metrics import check_images
from cvcourse.seeding import seed_everything
from cvcourse.segmentation.losses import bce_dice_loss, ce_dice_loss


def _expanding_path(model: nn.Module) -> nn.ModuleList:
    """The ``ups`` of the U-Net inside a DiffusionUNet or a MaskDiffusionUNet."""
    unet = getattr(getattr(model, "denoiser", model), "unet", None)
    if unet is None or not hasattr(unet, "ups"):
        raise ValueError(f"diffusion_features reads the U-Net of a DiffusionUNet or MaskDiffusionUNet, got "
                         f"{type(model).__name__}.")
    return unet.ups


@torch.no_grad()
def diffusion_features(model: nn.Module, schedule: NoiseSchedule, images: torch.Tensor,
                       timesteps: Sequence[int] = (50, 150), *, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """Per-pixel features (N, F, H, W) of images (N, C, H, W) in [0, 1]: each decoder level's output at each timestep.

    Each image is noised to each of ``timesteps`` (the same noise, drawn from ``seed``) and read by ``model`` once
    per timestep; the outputs of the expanding path's levels are upsampled (bilinear) to the image's size.
    """
    check_images(images, model.in_channels)
    if not timesteps or any(not 0 <= t < schedule.T for t in timesteps):
        raise ValueError(f"timesteps must be a non-empty list within [0, {schedule.T}), got {list(timesteps)}.")
    device = next(model.parameters()).device
    outputs: list[torch.Tensor] = []
    hooks = [up.register_forward_hook(lambda module, inputs, output: outputs.append(output))
             for up in _expanding_path(model)]
    model.eval()
    features = []
    try:
        noise = gaussian(images.shape, torch.Generator().manual_seed(seed), images)
        for first in range(0, len(images), batch_size):
            x0 = to_diffusion_range(images[first:first + batch_size]).to(device)
            per_timestep = []
            for t in timesteps:
                outputs.clear()
                model(q_sample(schedule.to(device), x0, t, noise[first:first + batch_size].to(device)), t)
                per_timestep += [F.interpolate(level, size=images.shape[-2:], mode="bilinear", align_corners=False)
                                 for level in outputs]
            features.append(torch.cat(per_timestep, dim=1).cpu())
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat(features)


class PixelLabeller(nn.Module):
    """An MLP applied at every pixel: features (N, F, H, W) -> logits (N, out_channels, H, W).

    The features are standardised first (a BatchNorm without learned scale), since levels differ in scale.
    """

    def __init__(self, in_features: int, out_channels: int = 1, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.BatchNorm2d(in_features, affine=False), nn.Conv2d(in_features, hidden, 1),
                                 nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, out_channels, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def fit_pixel_labeller(features: torch.Tensor, masks: torch.Tensor, num_classes: int = 2, *, steps: int = 300,
                       pixels_per_step: int = 16_384, lr: float = 3e-3, seed: int = 0) -> PixelLabeller:
    """A :class:`PixelLabeller` trained on the labelled images' features and masks (N, H, W): each step on
    ``pixels_per_step`` pixels drawn at random from all the images, with BCE + Dice (two classes) or cross-entropy +
    Dice; returned in eval mode."""
    if features.ndim != 4 or masks.shape != (len(features), *features.shape[2:]):
        raise ValueError(f"expected features (N, F, H, W) and masks (N, H, W) of the same N, H and W, got "
                         f"{tuple(features.shape)} and {tuple(masks.shape)}.")
    seed_everything(seed)
    pixels = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1], 1, 1)  # each pixel a 1 x 1 "image"
    labels = masks.reshape(-1, 1, 1)
    labeller = PixelLabeller(features.shape[1], 1 if num_classes == 2 else num_classes)
    loss_fn = bce_dice_loss if num_classes == 2 else ce_dice_loss
    optimizer = torch.optim.Adam(labeller.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    labeller.train()
    for _ in range(steps):
        chosen = torch.randint(0, len(pixels), (min(pixels_per_step, len(pixels)),), generator=generator)
        loss = loss_fn(labeller(pixels[chosen]), labels[chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return labeller.eval()
