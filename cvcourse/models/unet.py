"""U-Net (Ronneberger et al. 2015) for binary and multiclass segmentation, any input size.

``depth`` poolings take a ``base_width``-channel map down to the bottleneck, which has
``base_width * 2**depth`` channels; the expanding path mirrors it, each level concatenating the encoder
map of the same level (never a pooled one). One output channel means binary segmentation (sigmoid,
``BCEWithLogitsLoss``); ``num_classes`` channels mean multiclass (softmax, ``CrossEntropyLoss``).
The model returns logits; :func:`logits_to_mask` turns them into a mask.

Inputs of any height and width work: they are padded to a multiple of ``2**depth`` (replicating the
border) and the output is cropped back, so every pooling halves an even size and every skip matches.

``block="residual"`` builds the same wiring from the DDPM U-Net's residual blocks (a 3x3 convolution first turns
the pixels into features, and a norm and SiLU come before the head, as pre-activation blocks need), and
``attention=True`` adds self-attention and one more block at the bottleneck (:class:`AttentionBottleneck`): the
diffusion chapters' noise predictor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvcourse.device import autocast_enabled
from cvcourse.models.blocks import AttentionBottleneck, Down, Up, block_class, group_count, norm_layer


class UNet(nn.Module):
    """``UNet(in_channels, out_channels)`` maps (B, in_channels, H, W) images to (B, out_channels, H, W) logits."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, *, depth: int = 4, base_width: int = 64,
                 norm: str = "batch", dropout: float = 0.0, upsampling: str = "transpose",
                 embed_dim: int | None = None, block: str = "conv", attention: bool = False) -> None:
        super().__init__()
        if depth < 1 or base_width < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"UNet needs depth, base_width, in_channels and out_channels >= 1; got depth={depth}, "
                             f"base_width={base_width}, in_channels={in_channels}, out_channels={out_channels}.")
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        widths = [base_width * 2**level for level in range(depth + 1)]
        if norm == "group" and any(width % group_count(width) for width in widths):
            raise ValueError(f"norm='group' splits each block's channels into 8 groups, so base_width must be a "
                             f"multiple of 8 (or 1, 2 or 4); got base_width={base_width}, e.g. use "
                             f"{max(8, round(base_width / 8) * 8)}.")
        options = dict(norm=norm, dropout=dropout, embed_dim=embed_dim)
        Block, residual = block_class(block), block == "residual"
        self.entry = nn.Conv2d(in_channels, widths[0], 3, padding=1) if residual else nn.Identity()
        self.stem = Block(widths[0] if residual else in_channels, widths[0], **options)
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1], block=block, **options) for i in range(depth))
        self.middle = AttentionBottleneck(widths[-1], block=block, **options) if attention else None
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], mode=upsampling, block=block, **options)
                                 for i in reversed(range(depth)))
        self.exit = nn.Sequential(norm_layer(norm, widths[0]), nn.SiLU()) if residual else nn.Identity()
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, images: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        self._check(images)
        height, width = images.shape[-2:]
        multiple = 2**self.depth
        pad_bottom, pad_right = -height % multiple, -width % multiple
        x = F.pad(images, (0, pad_right, 0, pad_bottom), mode="replicate") if pad_bottom or pad_right else images

        skips = [self.stem(self.entry(x), embedding)]
        for down in self.downs:
            skips.append(down(skips[-1], embedding))
        x = skips.pop()  # the bottleneck
        if self.middle is not None:
            x = self.middle(x, embedding)
        for up in self.ups:
            x = up(x, skips.pop(), embedding)  # the encoder map of the same level
        return self.head(self.exit(x))[..., :height, :width]

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4:
            raise ValueError(f"UNet expects a batch (B, C, H, W), got shape {tuple(images.shape)}; "
                             "add a batch dimension with images.unsqueeze(0).")
        if images.shape[1] != self.in_channels:
            hint = ("repeat the grey channel with images.expand(-1, 3, -1, -1), or build UNet(in_channels=1)"
                    if images.shape[1] == 1 else f"build UNet(in_channels={images.shape[1]})")
            raise ValueError(f"This UNet takes {self.in_channels}-channel images, got {images.shape[1]} channels: "
                             f"{hint}.")
        if not images.is_floating_point():
            raise ValueError(f"UNet expects float images (e.g. in [0, 1]), got {images.dtype}; "
                             "convert with torchvision.transforms.v2.ToDtype(torch.float32, scale=True).")
        weights = self.head.weight.dtype
        if images.dtype != weights and not autocast_enabled(images.device.type):
            raise ValueError(f"UNet's weights are {weights} but the images are {images.dtype}: convert them with "
                             f"images.to({weights}) (float64 usually comes from NumPy: torch.from_numpy(a).float()).")


def logits_to_mask(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(B, 1, H, W) logits -> {0, 1} mask by ``sigmoid > threshold``; (B, K, H, W) -> class map by argmax."""
    if logits.ndim != 4:
        raise ValueError(f"Expected logits of shape (B, C, H, W), got {tuple(logits.shape)}.")
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits[:, 0]) > threshold).long()
    return logits.argmax(dim=1)
