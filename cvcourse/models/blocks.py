"""The building blocks of the course's U-Nets (segmentation now, diffusion later).

Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation", Fig. 1:
each level is two 3x3 convolutions with ReLU; the contracting path halves the resolution with 2x2 max
pooling; the expanding path doubles it with a 2x2 up-convolution that halves the channels, then
concatenates the encoder's feature map of the *same level* (cropped to size) and convolves again.

We pad the convolutions ("same" size) and add normalisation, as most modern U-Nets do. Each block can
also take an embedding vector (a diffusion timestep, a class label) that is projected to one value per
channel and added between the two convolutions, as in the DDPM U-Net (Ho et al. 2020), so the diffusion
chapters reuse these blocks instead of writing a second U-Net.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "group", "instance", "none")
UPSAMPLING = ("transpose", "bilinear")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Normalisation by name: batch, group (8 groups or fewer), instance, or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown normalisation {kind!r}; choose one of {', '.join(NORMS)}.")


def center_crop(features: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height x width`` window of ``features`` (B, C, H, W)."""
    top = (features.shape[-2] - height) // 2
    left = (features.shape[-1] - width) // 2
    if top < 0 or left < 0:
        raise ValueError(f"Cannot crop {tuple(features.shape[-2:])} features to a larger size {(height, width)}.")
    return features[..., top:top + height, left:left + width]


def crop_and_concat(skip: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
    """The skip connection: crop the encoder map to the up-sampled map's size, then ``[skip, upsampled]``.

    In the paper the crop is needed because unpadded convolutions shrink every map; with padded
    convolutions and inputs padded to a multiple of ``2**depth`` the sizes already agree.
    """
    skip = center_crop(skip, *upsampled.shape[-2:])
    return torch.cat([skip, upsampled], dim=1)


class ConvBlock(nn.Module):
    """(3x3 conv, norm, ReLU) twice, with optional dropout and an optional embedding added in between."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: str = "batch", dropout: float = 0.0,
                 embed_dim: int | None = None) -> None:
        super().__init__()
        bias = norm == "none"  # a normalisation layer has its own shift
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)
        self.norm1 = norm_layer(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)
        self.norm2 = norm_layer(norm, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.embed = nn.Linear(embed_dim, out_channels) if embed_dim else None

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        x = self.act(self.norm1(self.conv1(x)))
        if self.embed is not None:
            if embedding is None:
                raise ValueError("This block was built with embed_dim, so forward needs an embedding (B, embed_dim).")
            x = x + self.embed(embedding)[:, :, None, None]
        return self.act(self.norm2(self.conv2(self.dropout(x))))


class Down(nn.Module):
    """Contracting step: 2x2 max pooling, then a ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int, **block: object) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.block = ConvBlock(in_channels, out_channels, **block)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.block(self.pool(x), embedding)


class Up(nn.Module):
    """Expanding step: up-sample to ``out_channels`` (half the input), concatenate the skip, ConvBlock.

    ``mode="transpose"`` is the paper's learned 2x2 up-convolution; ``"bilinear"`` interpolates and
    then mixes channels with a 1x1 convolution (no checkerboard artefacts, fewer parameters).
    """

    def __init__(self, in_channels: int, out_channels: int, *, mode: str = "transpose", **block: object) -> None:
        super().__init__()
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        elif mode == "bilinear":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(in_channels, out_channels, kernel_size=1))
        else:
            raise ValueError(f"Unknown up-sampling {mode!r}; choose one of {', '.join(UPSAMPLING)}.")
        self.block = ConvBlock(2 * out_channels, out_channels, **block)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.block(crop_and_concat(skip, self.up(x)), embedding)
