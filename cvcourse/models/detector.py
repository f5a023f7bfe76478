"""A single-stage, anchor-free detector: a small backbone, a feature pyramid and a dense head.

The design follows FCOS (Tian et al. 2019, "FCOS: Fully Convolutional One-Stage Object Detection"), the
anchor-free recipe the later YOLO versions (YOLOX, YOLOv8) also adopted: every location of every pyramid
level predicts class scores, its distances (l, t, r, b) to the four sides of a box, and a "centerness"
that down-weights locations far from an object's centre. We choose anchor-free because there is nothing
to tune for the data (anchor sizes and ratios), the targets are simple to explain, and one location
per stride covers the small objects of the course's scenes.

- backbone: conv-BN-ReLU stages, each halving the resolution, giving C2..C4 at strides 4, 8, 16;
- feature pyramid (Lin et al. 2017, FPN): 1x1 lateral convolutions, a top-down path of nearest
  up-sampling and addition, a 3x3 convolution per level;
- head, shared by all levels (as FCOS): a classification tower and a regression tower of 3x3 convs;
  the regression output is exp(s * x) * stride, so distances are positive and scale with the level.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cvcourse.device import autocast_enabled
from cvcourse.models.blocks import conv_bn_relu, norm_layer

STRIDES = (4, 8, 16)


class Scale(nn.Module):
    """A learnable scalar per pyramid level (FCOS sec. 3.2): the shared head can still regress each scale."""

    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


def head_tower(channels: int, depth: int) -> nn.Sequential:
    """3x3 convolutions with group norm and ReLU, as the FCOS head (group norm: batch statistics of a
    few images per level are unreliable)."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), norm_layer("group", channels), nn.ReLU()]
    return nn.Sequential(*layers)


class PyramidBackbone(nn.Module):
    """``PyramidBackbone(width, fpn_width)(images)`` -> the feature pyramid P2..P4 (B, fpn_width, H / s, W / s) at
    strides s = 4, 8, 16: the detectors' shared trunk (the dense detector below; the box denoiser of
    :mod:`cvcourse.models.box_denoiser` starts from a trained one)."""

    def __init__(self, *, width: int = 32, fpn_width: int = 64) -> None:
        super().__init__()
        if width < 1 or fpn_width < 1:
            raise ValueError(f"the backbone needs width and fpn_width >= 1, got {width} and {fpn_width}.")
        self.strides = STRIDES
        self.stem = nn.Sequential(conv_bn_relu(3, width // 2), nn.MaxPool2d(2), conv_bn_relu(width // 2, width),
                                  nn.MaxPool2d(2))  # stride 4
        self.stages = nn.ModuleList([
            conv_bn_relu(width, width),  # C2, stride 4
            nn.Sequential(nn.MaxPool2d(2), conv_bn_relu(width, 2 * width), conv_bn_relu(2 * width, 2 * width)),
            nn.Sequential(nn.MaxPool2d(2), conv_bn_relu(2 * width, 4 * width), conv_bn_relu(4 * width, 4 * width)),
        ])  # C3 and C4, strides 8 and 16
        self.lateral = nn.ModuleList(nn.Conv2d(c, fpn_width, 1) for c in (width, 2 * width, 4 * width))
        self.smooth = nn.ModuleList(nn.Conv2d(fpn_width, fpn_width, 3, padding=1) for _ in STRIDES)

    def pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """P2..P4: the backbone's maps, each enriched top-down with the coarser levels' meaning."""
        self.check_images(images)
        features, x = [], self.stem(images)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        levels = [lateral(feature) for lateral, feature in zip(self.lateral, features)]
        for i in range(len(levels) - 2, -1, -1):  # top-down: add the up-sampled coarser level
            levels[i] = levels[i] + F.interpolate(levels[i + 1], size=levels[i].shape[-2:], mode="nearest")
        return [smooth(level) for smooth, level in zip(self.smooth, levels)]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.pyramid(images)

    def check_images(self, images: torch.Tensor) -> None:
        """Refuse what the backbone cannot take, saying how to fix it."""
        name = type(self).__name__
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{name} expects RGB batches (B, 3, H, W), got {tuple(images.shape)}; "
                             "add a batch dimension with images.unsqueeze(0) or repeat a grey channel.")
        if not images.is_floating_point():
            raise ValueError(f"{name} expects float images in [0, 1], got {images.dtype}: convert with "
                             "v2.ToDtype(torch.float32, scale=True) (or images.float() / 255).")
        weights = self.stem[0][0].weight.dtype
        if images.dtype != weights and not autocast_enabled(images.device.type):
            raise ValueError(f"{name}'s weights are {weights} but the images are {images.dtype}: convert them "
                             f"with images.to({weights}).")
        if images.shape[-1] % STRIDES[-1] or images.shape[-2] % STRIDES[-1]:
            raise ValueError(f"Image height and width must be multiples of {STRIDES[-1]}, got "
                             f"{tuple(images.shape[-2:])}; resize or pad them (v2.Resize, v2.Pad).")


class DenseDetector(PyramidBackbone):
    """``DenseDetector(num_classes)(images)`` -> per level: class logits (B, K, H, W), box distances
    (B, 4, H, W) in pixels (l, t, r, b), centerness logits (B, 1, H, W). ``num_classes`` counts the
    object classes only (labels 1..K in the targets; no background channel: sigmoid scores)."""

    def __init__(self, num_classes: int, *, width: int = 32, fpn_width: int = 64, head_depth: int = 2,
                 prior: float = 0.01) -> None:
        if num_classes < 1:
            raise ValueError(f"DenseDetector needs num_classes >= 1, got {num_classes}.")
        super().__init__(width=width, fpn_width=fpn_width)
        self.num_classes = num_classes
        self.cls_tower, self.box_tower = head_tower(fpn_width, head_depth), head_tower(fpn_width, head_depth)
        self.cls_logits = nn.Conv2d(fpn_width, num_classes, 3, padding=1)
        self.box_distances = nn.Conv2d(fpn_width, 4, 3, padding=1)
        self.centerness = nn.Conv2d(fpn_width, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale() for _ in STRIDES)
        # start every location at probability `prior` for every class (RetinaNet's focal-loss initialisation)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior) / prior))

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        outputs = []
        for level, scale, stride in zip(self.pyramid(images), self.scales, STRIDES):
            cls_features, box_features = self.cls_tower(level), self.box_tower(level)
            outputs.append({"cls_logits": self.cls_logits(cls_features),
                            "distances": torch.exp(scale(self.box_distances(box_features)).clamp(max=8)) * stride,
                            "centerness": self.centerness(box_features)})
        return outputs
