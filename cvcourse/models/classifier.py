"""A small convolutional image classifier: the course's first trained model.

Three conv-BN-ReLU stages, each halving the resolution, then global average pooling and a linear
layer (the all-convolutional recipe of Springenberg et al. 2015 with batch norm, Ioffe & Szegedy 2015).
``features`` returns the pooled penultimate features, which later chapters reuse as an embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from cvcourse.models.blocks import conv_bn_relu


class SmallCNN(nn.Module):
    """Classifies ``(B, in_channels, H, W)`` images (H, W >= 8) into ``num_classes`` logits."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        if num_classes < 2 or in_channels < 1 or width < 1:
            raise ValueError(f"SmallCNN needs num_classes >= 2, in_channels >= 1 and width >= 1; got "
                             f"{num_classes}, {in_channels}, {width}.")
        self.in_channels = in_channels
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, width), nn.MaxPool2d(2),
            conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            conv_bn_relu(2 * width, 4 * width), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features, shape ``(B, 4 * width)``."""
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"SmallCNN expects a batch of shape (B, {self.in_channels}, H, W), got {tuple(images.shape)}. "
                "Add a batch dimension with images.unsqueeze(0), or build the model with "
                f"in_channels={images.shape[-3] if images.ndim >= 3 else '?'}."
            )
        if min(images.shape[-2:]) < 8:
            raise ValueError(f"SmallCNN needs images of at least 8x8 pixels, got {tuple(images.shape[-2:])}.")
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
