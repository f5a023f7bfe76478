"""The building blocks of the course's U-Nets (segmentation now, diffusion later).

Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation", Fig. 1:
each level is two 3x3 convolutions with ReLU; the contracting path halves the resolution with 2x2 max
pooling; the expanding path doubles it with a 2x2 up-convolution that halves the channels, then
concatenates the encoder's feature map of the *same level* (cropped to size) and convolves again.

We pad the convolutions ("same" size) and add normalisation, as most modern U-Nets do. Each block can
also take an embedding vector (a diffusion timestep, a class label) that is projected to one value per
channel and added between the two convolutions, as in the DDPM U-Net (Ho et al. 2020), so the diffusion
chapters reuse these blocks instead of writing a second U-Net.

The diffusion chapters' U-Net swaps the paper's block for the DDPM U-Net's own parts, in the same wiring:
:class:`ResidualBlock` (two pre-activation convolutions and a skip connection, the embedding as a per-channel
scale and shift) and :class:`SelfAttention` at the bottleneck, where every position may look at every other.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "group", "instance", "none")
UPSAMPLING = ("transpose", "bilinear")


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias: batch norm adds its own), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def upsampling_plan(image_size: int) -> tuple[int, int]:
    """``(start, doublings)`` with ``start * 2**doublings == image_size``: 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)."""
    start, doublings = image_size, 0
    while isinstance(image_size, int) and start % 2 == 0 and start > 7:
        start, doublings = start // 2, doublings + 1
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 28 or start not in (4, 7):
        raise ValueError(f"image_size must be 4 or 7 times a power of two, at least 28 (e.g. 28, 32, 64); "
                         f"got {image_size}. Resize the images, e.g. with transforms.v2.Resize(32).")
    return start, doublings


def group_count(channels: int) -> int:
    """The groups of the course's group norm: 8, or one per channel below 8 (Wu & He 2018 used 32 on wider nets)."""
    return min(8, channels)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Normalisation by name: batch, group (:func:`group_count` groups), instance, or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
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


class ResidualBlock(nn.Module):
    """The DDPM U-Net's residual block: ``x + F(x)``, with ``F`` two (norm, SiLU, 3x3 conv) in a row.

    Ho et al. 2020 (Appendix B) build their U-Net from Wide ResNet blocks; like the improved DDPM (Dhariwal &
    Nichol 2021, section 3, "AdaGN"), the embedding sets a per-channel *scale and shift* of the normalised features
    between the two convolutions, ``norm(h) * (1 + scale) + shift``. A 1x1 convolution matches the skip's channels
    when they change. The second convolution starts at zero, so each block starts as the identity (its skip).
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str = "group", dropout: float = 0.0,
                 embed_dim: int | None = None) -> None:
        super().__init__()
        self.norm1 = norm_layer(norm, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = norm_layer(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.embed = nn.Linear(embed_dim, 2 * out_channels) if embed_dim else None
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm2(self.conv1(self.act(self.norm1(x))))
        if self.embed is not None:
            if embedding is None:
                raise ValueError("This block was built with embed_dim, so forward needs an embedding (B, embed_dim).")
            scale, shift = self.embed(embedding)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.skip(x) + self.conv2(self.dropout(self.act(h)))


def block_class(kind: str) -> type[nn.Module]:
    """The block a U-Net is built from, by name: ``"conv"`` (the paper's) or ``"residual"`` (DDPM's)."""
    blocks = {"conv": ConvBlock, "residual": ResidualBlock}
    if kind not in blocks:
        raise ValueError(f"Unknown block {kind!r}; choose one of {', '.join(blocks)}.")
    return blocks[kind]


class SelfAttention(nn.Module):
    """``x + attention(norm(x))`` over the H*W positions of a feature map (B, C, H, W), ``heads`` heads.

    The DDPM U-Net (Ho et al. 2020, Appendix B) adds self-attention at its 16x16 level: a convolution sees a
    3x3 window, attention relates every position to every other in one step, which helps the global layout (is
    this stroke the top of a 7 or of a 9?). It costs (H*W)^2, so it sits at the coarsest level.
    """

    def __init__(self, channels: int, *, heads: int = 4, norm: str = "group") -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"self-attention needs channels divisible by heads, got {channels} and {heads}.")
        self.norm = norm_layer(norm, channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C): one token per position
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + attended.transpose(1, 2).reshape(batch, channels, height, width)


class AttentionBottleneck(nn.Module):
    """The DDPM U-Net's middle: the bottleneck block's output through :class:`SelfAttention`, then one more block.

    Ho et al. 2020 (Appendix B) put "residual block, self-attention, residual block" between the two halves of
    their U-Net; here the first of the three is the last contracting step's block.
    """

    def __init__(self, channels: int, *, block: str = "residual", **options: object) -> None:
        super().__init__()
        self.attention = SelfAttention(channels, norm=str(options.get("norm", "group")))
        self.block = block_class(block)(channels, channels, **options)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.block(self.attention(x), embedding)


class Down(nn.Module):
    """Contracting step: 2x2 max pooling, then a block (``ConvBlock`` or ``ResidualBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, *, block: str = "conv", **options: object) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.block = block_class(block)(in_channels, out_channels, **options)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.block(self.pool(x), embedding)


class Up(nn.Module):
    """Expanding step: up-sample to ``out_channels`` (half the input), concatenate the skip, then a block.

    ``mode="transpose"`` is the paper's learned 2x2 up-convolution; ``"bilinear"`` interpolates and
    then mixes channels with a 1x1 convolution (no checkerboard artefacts, fewer parameters).
    """

    def __init__(self, in_channels: int, out_channels: int, *, mode: str = "transpose", block: str = "conv",
                 **options: object) -> None:
        super().__init__()
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        elif mode == "bilinear":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(in_channels, out_channels, kernel_size=1))
        else:
            raise ValueError(f"Unknown up-sampling {mode!r}; choose one of {', '.join(UPSAMPLING)}.")
        self.block = block_class(block)(2 * out_channels, out_channels, **options)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.block(crop_and_concat(skip, self.up(x)), embedding)
