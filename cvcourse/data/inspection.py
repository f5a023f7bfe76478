"""Synthetic industrial inspection, in the spirit of MVTec AD: normal images to learn from, defects with pixel masks.

Bergmann et al. ("MVTec AD", CVPR 2019) photographed textures and objects on a production line: a training split
of defect-free images only, a test split of normal and defective images with a pixel mask of every defect. This
module draws the same kind of data, small and offline:

- ``stripes``, a regular texture (a woven fabric's ribs: a grating of fixed period and direction);
- ``carpet``, a stochastic texture (smoothed noise, different in every image, as MVTec's carpet or leather);
- ``washer``, an object (a metal ring on a dark belt, placed a little differently each time).

Defects (``DEFECTS``) are drawn onto a normal image, where a person would see them: a ``scratch`` (a thin line of
inverted brightness), a ``hole`` (material missing: a disc of the belt showing through) and a ``stain`` (a blot
whose colour changes while its brightness hardly does). Every defect stays inside the range of normal pixel values
and covers a few percent of the image, so neither a per-image brightness nor a threshold finds it (a test checks
that the mean and the maximum of the raw pixels score an image AUROC below 0.70): what gives it away is that the
pattern is wrong there.

Image ``i`` of a split depends only on ``(seed, category, split, i)`` (``numpy.random.default_rng``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

CATEGORIES = ("stripes", "carpet", "washer")
KINDS = {"stripes": "regular texture", "carpet": "stochastic texture", "washer": "object"}
DEFECTS = ("scratch", "hole", "stain")
SPLITS = ("train", "test")
COLOURS = {"stripes": (0.85, 0.62, 0.40), "carpet": (0.55, 0.60, 0.80), "washer": (0.80, 0.80, 0.78)}
STAIN_COLOURS = {"stripes": (0.45, 0.60, 0.95), "carpet": (0.95, 0.60, 0.35), "washer": (0.95, 0.65, 0.40)}
BELT = (0.12, 0.13, 0.15)  # the dark surface under the material: what a hole shows, the washer's background
STRIPE_PERIOD = 5.0  # pixels at image size 32, scaled with the image
NOISE = 0.02  # sensor noise (std) on every image
MASK_LEVEL = 0.25  # a pixel belongs to a defect's mask where the defect's weight exceeds this


@dataclass(frozen=True)
class AnomalySplit:
    """Images (N, C, S, S) in [0, 1], their defect masks (N, 1, S, S) bool (None where a dataset has none: then only
    image metrics can be computed), labels (N,) (1 = defective) and each image's defect name (``"good"`` for a
    normal image). The synthetic set (``inspection_split``) and MVTec AD (``cvcourse.data.mvtec_ad``) give one."""

    images: torch.Tensor
    masks: torch.Tensor | None
    labels: torch.Tensor
    defects: tuple[str, ...]
    category: str

    def __len__(self) -> int:
        return len(self.images)

    def __post_init__(self) -> None:
        n = len(self.images)
        masks = n if self.masks is None else len(self.masks)
        if not (masks == len(self.labels) == len(self.defects) == n):
            raise ValueError(f"images, masks, labels and defects must have one entry per image, got {n}, "
                             f"{masks}, {len(self.labels)}, {len(self.defects)}.")

    def of(self, defect: str) -> AnomalySplit:
        """The images of one defect kind (or ``"good"``)."""
        keep = [i for i, name in enumerate(self.defects) if name == defect]
        if not keep:
            raise ValueError(f"no {defect!r} images in this split; it has {sorted(set(self.defects))}.")
        index = torch.tensor(keep)
        return AnomalySplit(self.images[index], None if self.masks is None else self.masks[index], self.labels[index],
                            tuple(self.defects[i] for i in keep), self.category)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return y, x


def _tinted(brightness: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    return brightness[None] * np.asarray(colour)[:, None, None]


def stripes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Ribs of a fixed period and direction (within 4 degrees), random phase: an image (3, S, S) and where material
    is (all of it)."""
    y, x = _grid(size)
    angle = np.deg2rad(rng.uniform(-4, 4))
    period = STRIPE_PERIOD * size / 32
    ribs = 0.55 + 0.3 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))
    return _tinted(ribs * rng.uniform(0.95, 1.05), COLOURS["stripes"]), np.ones((size, size), bool)


def carpet(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed white noise, new in every image: a stochastic texture (3, S, S) and where material is (all)."""
    fibres = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=size / 32, mode="wrap")
    fibres = 0.6 + 0.15 * fibres / fibres.std()
    return _tinted(fibres * rng.uniform(0.95, 1.05), COLOURS["carpet"]), np.ones((size, size), bool)


def washer(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A shaded metal ring on the belt, its centre within 1.5 px (at 32) of the middle: an image and the ring."""
    y, x = _grid(size)
    centre = (size - 1) / 2 + rng.uniform(-1.5, 1.5, size=2) * size / 32
    radius = np.hypot(y - centre[0], x - centre[1]) / size
    ring = np.clip((0.40 - radius) * size, 0, 1) * np.clip((radius - 0.16) * size, 0, 1)  # anti-aliased edges
    light = rng.uniform(0, 2 * np.pi)
    shading = 0.75 + 0.15 * np.cos(np.arctan2(y - centre[0], x - centre[1]) - light)
    image = ring[None] * _tinted(shading, COLOURS["washer"]) + (1 - ring[None]) * np.asarray(BELT)[:, None, None]
    return image, ring > 0.5


NORMAL = {"stripes": stripes, "carpet": carpet, "washer": washer}


def _spot(rng: np.random.Generator, material: np.ndarray, margin: int) -> np.ndarray:
    """A random point (y, x) on the material, at least ``margin`` pixels from the border."""
    size = material.shape[0]
    inner = np.zeros_like(material)
    inner[margin:size - margin, margin:size - margin] = True
    candidates = np.argwhere(material & inner)
    return candidates[rng.integers(len(candidates))].astype(np.float64)


def scratch(rng: np.random.Generator, image: np.ndarray, material: np.ndarray, colour: tuple[float, ...]) -> np.ndarray:
    """A thin straight line across the material, 30 to 55% of the image long, where brightness is inverted about
    the material's mean; returns the defect's weight (S, S) in [0, 1] and changes ``image`` in place."""
    size = image.shape[-1]
    y, x = _grid(size)
    centre = _spot(rng, material, size // 4)
    angle, half = rng.uniform(0, np.pi), rng.uniform(0.15, 0.275) * size
    along = (y - centre[0]) * np.sin(angle) + (x - centre[1]) * np.cos(angle)
    across = -(y - centre[0]) * np.cos(angle) + (x - centre[1]) * np.sin(angle)
    weight = np.clip(1.2 - np.abs(across) / (0.6 * size / 32), 0, 1) * (np.abs(along) <= half) * material
    mean = image[:, material].mean(axis=1)[:, None, None]
    image[:] = (1 - weight) * image + weight * np.clip(2 * mean - image, 0, 1)
    return weight


def hole(rng: np.random.Generator, image: np.ndarray, material: np.ndarray, colour: tuple[float, ...]) -> np.ndarray:
    """Material missing: a disc of radius 6 to 10% of the image where the belt shows through."""
    size = image.shape[-1]
    y, x = _grid(size)
    centre = _spot(rng, material, size // 6)
    radius = rng.uniform(0.06, 0.10) * size
    weight = np.clip(radius + 0.5 - np.hypot(y - centre[0], x - centre[1]), 0, 1) * material
    image[:] = (1 - weight) * image + weight * np.asarray(BELT)[:, None, None]
    return weight


def stain(rng: np.random.Generator, image: np.ndarray, material: np.ndarray, colour: tuple[float, ...]) -> np.ndarray:
    """A soft blot of radius 10 to 16% of the image that takes ``colour`` at the same brightness (the mean over the
    channels)."""
    size = image.shape[-1]
    y, x = _grid(size)
    centre = _spot(rng, material, size // 6)
    radius = rng.uniform(0.10, 0.16) * size
    weight = np.exp(-0.5 * (np.hypot(y - centre[0], x - centre[1]) / (0.6 * radius)) ** 4) * material
    colour = np.asarray(colour)[:, None, None]
    image[:] = (1 - weight) * image + weight * np.clip(image.mean(axis=0) * colour / colour.mean(), 0, 1)
    return weight


DEFECT_FUNCTIONS = {"scratch": scratch, "hole": hole, "stain": stain}


def _check(category: str, split: str, image_size: int) -> None:
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; the synthetic inspection set has {', '.join(CATEGORIES)} "
                         "(for MVTec AD's categories use cvcourse.data.mvtec_ad).")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' (normal images only) or 'test'.")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 so that a defect covers whole pixels, got {image_size}.")


def draw(category: str, defect: str, rng: np.random.Generator, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (3, S, S) of ``category`` with ``defect`` (or ``"good"``) and its mask (S, S), from ``rng``."""
    image, material = NORMAL[category](rng, image_size)
    mask = np.zeros((image_size, image_size), bool)
    if defect != "good":
        mask = DEFECT_FUNCTIONS[defect](rng, image, material, STAIN_COLOURS[category]) > MASK_LEVEL
    image = image + NOISE * rng.standard_normal(image.shape)
    return np.clip(image, 0, 1), mask


def inspection_split(category: str, split: str, count: int, *, image_size: int = 32, seed: int = 0) -> AnomalySplit:
    """``count`` images of ``category``: the ``train`` split is normal only; the ``test`` split cycles through
    ``("good", "good", *DEFECTS)``, so two fifths of it are normal and each defect kind a fifth.

    Deterministic: image ``i`` depends only on ``(seed, category, split, i)``.
    """
    _check(category, split, image_size)
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    cycle = ("good",) if split == "train" else ("good", "good", *DEFECTS)
    defects = tuple(cycle[i % len(cycle)] for i in range(count))
    images, masks = [], []
    for i, defect in enumerate(defects):
        rng = np.random.default_rng([seed, CATEGORIES.index(category), SPLITS.index(split), i])
        image, mask = draw(category, defect, rng, image_size)
        images.append(image)
        masks.append(mask)
    return AnomalySplit(torch.tensor(np.stack(images), dtype=torch.float32),
                        torch.from_numpy(np.stack(masks))[:, None],
                        torch.tensor([name != "good" for name in defects], dtype=torch.long), defects, category)
