"""A memory of normal patch features: the anomaly score of a test patch is its distance to the nearest normal one.

PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022): a network maps an image
to a grid of patch features (mid-level layers of an ImageNet-pretrained network, each averaged over its 3 x 3
neighbourhood so that a feature describes a patch, section 3.1); the features of every normal training patch form
a memory bank, subsampled to a coreset (section 3.2; here a random subset, simpler and close at this scale); a test
patch scores its distance to the nearest memory feature, the map is that score upsampled to the image and smoothed,
and the image score is the map's maximum. No training beyond filling the memory.

On a machine without the pretrained weights the features come from a fixed, randomly initialised convolutional
network: random filters still describe local structure, and whether they are enough is measured in chapter 09.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cvcourse.anomaly.reconstruction import smooth
from cvcourse.models.vae import check_unit_range

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _RandomFeatures(nn.Module):
    """Two random 3 x 3 convolutions with ReLU, the second with stride 2: features at 1/2 resolution."""

    def __init__(self, channels: int, width: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.layers = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())
        for layer in self.layers:
            if isinstance(layer, nn.Conv2d):  # PyTorch's default initialisation, drawn from our own generator
                bound = (1 / (layer.in_channels * 9)) ** 0.5
                layer.weight.data.uniform_(-bound, bound, generator=generator)
                layer.bias.data.uniform_(-bound, bound, generator=generator)
        self.requires_grad_(False).eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images * 2 - 1)


def random_features(channels: int = 3, width: int = 64, seed: int = 0) -> nn.Module:
    """A fixed random feature extractor: images (N, channels, H, W) in [0, 1] -> (N, 2 * width, H/2, W/2)."""
    return _RandomFeatures(channels, width, seed)


class _ResNetFeatures(nn.Module):
    """ResNet-18's layer2 and layer3 outputs, the latter upsampled to the former's grid and concatenated."""

    def __init__(self, weights) -> None:
        super().__init__()
        from torchvision.models import resnet18
        network = resnet18(weights=weights)
        self.stem = nn.Sequential(network.conv1, network.bn1, network.relu, network.maxpool, network.layer1)
        self.layer2, self.layer3 = network.layer2, network.layer3
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        middle = self.layer2(self.stem((images - self.mean) / self.std))
        deep = F.interpolate(self.layer3(middle), size=middle.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([middle, deep], dim=1)


def resnet_features(weights: str | None = "IMAGENET1K_V1") -> nn.Module:
    """ImageNet-pretrained ResNet-18 features (layer2 + layer3, 384 channels at 1/8 resolution), as PatchCore uses a
    WideResNet-50's. Needs RGB images of at least 64 x 64 and torchvision's weights (downloaded on first use;
    ``weights=None``: untrained, for tests)."""
    return _ResNetFeatures(weights)


class PatchMemory:
    """``PatchMemory(features).fit(normal_images)``, then ``maps(test_images)`` -> anomaly maps (N, H, W).

    ``memory_size`` caps the memory bank by a random subset of the normal patch features (``None``: keep all).
    """

    def __init__(self, features: nn.Module, *, memory_size: int | None = 20_000, blur_sigma: float = 1.0,
                 seed: int = 0) -> None:
        if memory_size is not None and memory_size < 1:
            raise ValueError(f"memory_size must be at least 1 (or None to keep every patch), got {memory_size}.")
        self.features, self.memory_size, self.blur_sigma, self.seed = features, memory_size, blur_sigma, seed
        self.memory: torch.Tensor | None = None

    @torch.no_grad()
    def patch_features(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Each patch's feature averaged over its 3 x 3 neighbourhood: (N, C, h, w), on the CPU."""
        if images.ndim != 4:
            raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(images.shape)}.")
        check_unit_range(images, "The feature memory")
        device = next(self.features.parameters()).device
        return torch.cat([F.avg_pool2d(self.features(batch.to(device)), 3, stride=1, padding=1).cpu()
                          for batch in images.split(batch_size)])

    def fit(self, normal_images: torch.Tensor) -> PatchMemory:
        """Fill the memory with the patch features of ``normal_images`` (defect-free training images)."""
        if len(normal_images) == 0:
            raise ValueError("the memory needs normal training images, got none; pass the category's train split.")
        bank = self.patch_features(normal_images).permute(0, 2, 3, 1).flatten(0, 2)
        if self.memory_size is not None and len(bank) > self.memory_size:
            keep = torch.randperm(len(bank), generator=torch.Generator().manual_seed(self.seed))[:self.memory_size]
            bank = bank[keep]
        self.memory = bank
        return self

    @torch.no_grad()
    def maps(self, images: torch.Tensor, chunk: int = 2048, progress: bool = False) -> torch.Tensor:
        """Nearest-neighbour distances of the patches of ``images``, upsampled to the image size and smoothed."""
        if self.memory is None:
            raise RuntimeError("the memory is empty: call fit(normal_images) first.")
        queries = self.patch_features(images)
        n, channels, h, w = queries.shape
        flat = queries.permute(0, 2, 3, 1).reshape(-1, channels)
        distances = torch.cat([torch.cdist(part, self.memory).amin(1) for part in
                               tqdm(flat.split(chunk), desc="nearest neighbours", disable=not progress)])
        maps = F.interpolate(distances.view(n, 1, h, w), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return smooth(maps[:, 0], self.blur_sigma)
