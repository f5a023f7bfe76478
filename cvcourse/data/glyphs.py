"""Glyphs: handwriting-like digits 0-9 drawn from a font, an MNIST-like set that needs no download.

Each digit is rendered with DejaVu Sans (shipped with matplotlib) in a random weight and stroke width, then
moved by a random affine transform (rotation, scale, shear, shift) and an elastic distortion (Simard et al.
2003, the augmentation that made MNIST networks robust), and finally shrunk to ``image_size`` with
antialiasing. As in MNIST: a white digit on black, one grey channel, values in [0, 1].
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from cvcourse.cache import cached, tensor_digest
from cvcourse.data.synthetic import _SeededDataset
from cvcourse.device import _usable_cpu_count

CANVAS = 64  # digits are drawn this large, then shrunk: smooth edges at 28 or 32 px
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf")
ELASTIC_ALPHA, ELASTIC_SIGMA = 8.0, 5.0  # displacement strength and smoothness, in canvas pixels


@lru_cache(maxsize=64)
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def render_digit(digit: int, font_name: str, size: int, stroke: int) -> torch.Tensor:
    """A digit centred on a black CANVAS x CANVAS float image (1, H, W) in [0, 1]."""
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(canvas).text((CANVAS / 2, CANVAS / 2), str(digit), fill=255, font=font(font_name, size),
                                anchor="mm", stroke_width=stroke, stroke_fill=255)
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)[None]


def elastic_field(generator: torch.Generator, alpha: float, sigma: float) -> torch.Tensor:
    """A smooth random displacement (1, H, W, 2) in grid units, as torchvision's ElasticTransform draws it."""
    noise = torch.rand(2, CANVAS, CANVAS, generator=generator) * 2 - 1
    kernel = int(8 * sigma) // 2 * 2 + 1
    smooth = TF.gaussian_blur(noise, [kernel, kernel], [sigma, sigma]) * alpha / CANVAS
    return smooth.permute(1, 2, 0)[None]


class Glyphs(_SeededDataset):
    """``dataset[i]`` is ``(image, label)``: a ``tv_tensors.Image`` (1, H, W) in [0, 1] and the digit 0..9."""

    class_names = tuple(str(digit) for digit in range(10))
    num_classes = 10

    def __init__(self, size: int = 10000, image_size: int = 28, *, seed: int = 0, transforms=None) -> None:
        super().__init__(size, image_size, seed, transforms)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, int]:
        rng = self._rng(index)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        label = int(rng.integers(10))
        image = render_digit(label, FONTS[int(rng.integers(len(FONTS)))], int(rng.integers(34, 46)),
                             int(rng.integers(0, 3)))
        image = TF.affine(image, angle=float(rng.uniform(-15, 15)), translate=[float(v) for v in rng.uniform(-4, 4, 2)],
                          scale=float(rng.uniform(0.8, 1.1)), shear=[float(rng.uniform(-12, 12)), 0.0],
                          interpolation=TF.InterpolationMode.BILINEAR)
        image = TF.elastic(image, elastic_field(generator, ELASTIC_ALPHA, ELASTIC_SIGMA))
        image = TF.resize(image, [self.image_size, self.image_size], antialias=True).clamp(0, 1)
        image = tv_tensors.Image(image)
        return (self.transforms(image) if self.transforms else image), label


def glyph_tensors(size: int, image_size: int = 28, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``materialize(Glyphs(size, image_size, seed=seed))``, drawn once per machine and cached.

    Returns float32 images (N, 1, H, W) in [0, 1] and int64 labels (N,). The glyphs are drawn by DataLoader
    workers on every usable core and stored with ``cvcourse.cache.cached``; the cache key includes a digest of
    the first glyph, so a change to how glyphs are drawn draws them again.
    """
    dataset = Glyphs(size, image_size, seed=seed)
    config = {"size": size, "image_size": image_size, "seed": seed, "first_glyph": tensor_digest(dataset[0][0])}

    def draw() -> dict:
        workers = _usable_cpu_count()
        loader = DataLoader(dataset, batch_size=min(500, math.ceil(size / workers)), num_workers=workers)
        images, labels = zip(*loader)
        return {"images": torch.cat(images).as_subclass(torch.Tensor), "labels": torch.cat(labels)}

    entry = cached("glyphs", config, draw)
    return entry["images"], entry["labels"]
