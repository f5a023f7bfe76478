"""Synthetic microscopy: crowded cells under uneven light, with noise, for binary segmentation.

The images imitate the fluorescence and electron-microscopy data of the U-Net paper (Ronneberger et
al., "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015): roundish cells
with wobbly outlines, many touching or slightly overlapping. As in the paper's annotations, the mask
keeps a thin background gap between touching cells, so that counting connected components counts cells.

Three knobs switch the difficulties on and off one by one (0 = off, 1 = the default strength):

- ``illumination``: a smooth multiplicative light field ``exp(-illumination * shading)`` (a gradient
  across the image plus a vignette). The bright side's background ends up brighter than dim cells on
  the dark side, so no single global threshold separates cells from background;
- ``noise``: shot noise (grows with the brightness, like photon counts) plus a constant read noise;
- ``touching``: how crowded the cells are: each cell grows against an earlier one with probability
  ``CROWDING * touching`` (at most 1), and otherwise lies on its own, apart from every other cell.

Item ``i`` depends only on ``(seed, i)`` (see ``cvcourse.data.synthetic``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torchvision import tv_tensors

from cvcourse.data.synthetic import _SeededDataset

CELLS_PER_IMAGE = (5, 10)
MEAN_RADIUS = (0.09, 0.15)  # of image_size
ASPECT = (1.0, 1.5)  # long axis / short axis of the ellipse
HARMONICS, WOBBLE = 3, 0.06  # outline harmonics 2, 3, 4, each of amplitude up to WOBBLE (of the radius)
OVERLAP = (0.005, 0.03)  # of image_size: how far a touching cell reaches into its neighbour
APART = 0.05  # of image_size: the least space between the outlines of cells that do not touch
CROWDING = 0.7  # probability that a cell grows against an earlier one, at touching = 1
PLACEMENT_TRIES = 50
BACKGROUND = 0.3  # background level before the light field
BRIGHTNESS = (0.3, 0.75)  # a cell's signal above the background, at its centre
EDGE = 0.7  # signal at the outline relative to the centre (a cell is a dome, thickest in the middle)
SEAM = 0.6  # signal left on the gap pixels where two cells press together
TEXTURE = 0.15  # strength of the smooth intensity texture inside cells
GRADIENT, VIGNETTE = 1.6, 0.6  # shading at strength 1: the darkest pixel gets 8-35% of the light
READ_NOISE, SHOT_NOISE = 0.05, 0.015  # noise std = noise * sqrt(READ**2 + SHOT * intensity)


@dataclass(frozen=True)
class _Cell:
    """An ellipse with radii ``(a, b)`` turned by ``angle`` (radians) whose outline wobbles:
    in the ellipse's own frame the outline lies at radius ``1 + sum_k w_k cos(k t + p_k)``, k = 2..4."""

    center: tuple[float, float]
    radii: tuple[float, float]
    angle: float
    wobble: tuple[float, ...]
    phase: tuple[float, ...]

    def _outline(self, t: np.ndarray | float) -> np.ndarray | float:
        """Radius of the outline at angle ``t`` in the ellipse's own frame (1 = no wobble)."""
        return 1 + sum(w * np.cos(k * t + p) for k, (w, p) in enumerate(zip(self.wobble, self.phase), start=2))

    def _frame(self, dx: np.ndarray | float, dy: np.ndarray | float) -> tuple[np.ndarray | float, ...]:
        """Offsets from the centre -> coordinates in which the ellipse is the unit circle."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        return (dx * cos + dy * sin) / self.radii[0], (-dx * sin + dy * cos) / self.radii[1]

    @property
    def farthest(self) -> float:
        """No point of the outline lies farther than this from the centre: long radius times the most wobble."""
        return self.radii[0] * (1 + sum(self.wobble))

    def relative_radius(self, image_size: int) -> np.ndarray:
        """Each pixel centre's distance from the cell's centre over the outline's distance in that
        direction, (H, W): <= 1 inside the cell; computed in the cell's bounding square only, inf elsewhere."""
        (left, right), (top, bottom) = (
            (max(0, math.floor(c - self.farthest)), min(image_size, math.ceil(c + self.farthest) + 1))
            for c in self.center
        )
        ys, xs = np.mgrid[top:bottom, left:right] + 0.5
        u, v = self._frame(xs - self.center[0], ys - self.center[1])
        relative = np.full((image_size, image_size), np.inf)
        relative[top:bottom, left:right] = np.hypot(u, v) / self._outline(np.arctan2(v, u))
        return relative

    def reach(self, direction: float) -> float:
        """Distance in pixels from the centre to the outline along ``direction`` (radians)."""
        u, v = self._frame(math.cos(direction), math.sin(direction))
        return float(self._outline(math.atan2(v, u)) / math.hypot(u, v))


def _random_cell(rng: np.random.Generator, center: tuple[float, float], image_size: int) -> _Cell:
    radius = rng.uniform(*MEAN_RADIUS) * image_size
    aspect = math.sqrt(rng.uniform(*ASPECT))
    return _Cell(center, (radius * aspect, radius / aspect), rng.uniform(0, math.pi),
                 tuple(rng.uniform(0, WOBBLE, HARMONICS)), tuple(rng.uniform(0, 2 * math.pi, HARMONICS)))


def _gap_between(cell: _Cell, other: _Cell) -> float:
    """Distance in pixels between the two outlines along the line joining the centres (< 0: overlap)."""
    dx, dy = other.center[0] - cell.center[0], other.center[1] - cell.center[1]
    direction = math.atan2(dy, dx)
    return math.hypot(dx, dy) - cell.reach(direction) - other.reach(direction + math.pi)


def _least_gap(cell: _Cell, other: _Cell) -> float:
    """A lower bound of the distance between the two cells anywhere: their enclosing circles' gap."""
    return math.dist(cell.center, other.center) - cell.farthest - other.farthest


def _place_cells(rng: np.random.Generator, image_size: int, touching: float) -> list[_Cell]:
    """Cells one by one: with probability ``CROWDING * touching`` against a random earlier cell (reaching
    up to OVERLAP into it along the line between their centres), otherwise anywhere, at least APART from
    every cell. A cell that finds no room in PLACEMENT_TRIES draws is left out."""
    cells: list[_Cell] = []
    for _ in range(rng.integers(CELLS_PER_IMAGE[0], CELLS_PER_IMAGE[1] + 1)):
        against = bool(cells) and rng.random() < CROWDING * touching
        for _ in range(PLACEMENT_TRIES):
            cell = _random_cell(rng, tuple(rng.uniform(0, image_size, 2)), image_size)
            if against:
                anchor = cells[rng.integers(len(cells))]
                direction = rng.uniform(0, 2 * math.pi)
                distance = (anchor.reach(direction) + cell.reach(direction + math.pi)
                            - rng.uniform(*OVERLAP) * image_size)
                center = (anchor.center[0] + distance * math.cos(direction),
                          anchor.center[1] + distance * math.sin(direction))
                cell = _Cell(center, cell.radii, cell.angle, cell.wobble, cell.phase)
                room = all(_gap_between(cell, other) >= -OVERLAP[1] * image_size for other in cells)
            else:
                room = all(_least_gap(cell, other) >= APART * image_size for other in cells)
            if room and 0 <= cell.center[0] < image_size and 0 <= cell.center[1] < image_size:
                cells.append(cell)
                break
    return cells


def touching_gaps(instances: np.ndarray) -> np.ndarray:
    """Pixels of a cell with a pixel of another cell among their 8 neighbours: bool (H, W).

    Removing them from the mask leaves a 2-pixel background gap wherever cells touch, so no two cells
    of the mask are 8-connected (the separation the U-Net paper's annotations have).
    """
    largest = ndimage.maximum_filter(instances, size=3)
    smallest = ndimage.minimum_filter(np.where(instances > 0, instances, instances.max() + 1), size=3)
    return (instances > 0) & ((largest != instances) | (smallest != instances))


def light_field(rng: np.random.Generator, image_size: int, illumination: float) -> np.ndarray:
    """Multiplicative light field (H, W) in (0, 1]: ``exp(-illumination * shading)``, where the shading is
    a linear gradient in a random direction plus a vignette around a random point, shifted so that the
    brightest pixel gets full light; all ones at illumination 0."""
    coords = (np.arange(image_size) + 0.5) / image_size
    xs, ys = np.meshgrid(coords, coords)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xs - 0.5) * math.cos(direction) + (ys - 0.5) * math.sin(direction)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    center = rng.uniform(0.3, 0.7, 2)
    vignette = ((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / 0.5
    shading = GRADIENT * ramp + VIGNETTE * vignette
    return np.exp(-illumination * (shading - shading.min()))


def _smooth_texture(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """Blotchy intensity texture (H, W) around 1: coarse random values upsampled bilinearly."""
    coarse = torch.from_numpy(rng.normal(0, 1, (1, 1, 6, 6)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return 1 + TEXTURE * smooth[0, 0].numpy()


def _consecutive_ids(labels: np.ndarray) -> np.ndarray:
    """Renumber the non-zero labels 1..n in order (a cell hidden by its neighbours leaves no hole)."""
    present = np.unique(labels[labels > 0])
    renumber = np.zeros(labels.max() + 1, dtype=np.int64)
    renumber[present] = np.arange(1, len(present) + 1)
    return renumber[labels]


class SyntheticCells(_SeededDataset):
    """Grayscale microscopy images of crowded cells, for binary segmentation (cell / background).

    ``dataset[i]`` is ``(image, target)``: ``image`` is a float ``tv_tensors.Image`` (1, H, W) in [0, 1];
    ``target["mask"]`` is a ``tv_tensors.Mask`` (H, W) int64, 1 on cells and 0 on the background and on
    the gaps between touching cells; ``target["instances"]`` is a ``tv_tensors.Mask`` (H, W) int64 of cell
    ids 1..n (0 = background), whole cells including the gaps, for the U-Net paper's weight map and for
    counting. ``transforms(image, target)`` is applied last, if given.
    """

    class_names = ("background", "cell")
    num_classes = len(class_names)

    def __init__(
        self,
        size: int = 500,
        image_size: int = 64,
        *,
        seed: int = 0,
        transforms: Callable | None = None,
        illumination: float = 1.0,
        noise: float = 1.0,
        touching: float = 1.0,
    ) -> None:
        super().__init__(size, image_size, seed, transforms)
        if image_size < 32:
            raise ValueError(f"image_size must be at least 32 pixels for cells to keep their shape, got {image_size}")
        for name, value in (("illumination", illumination), ("noise", noise), ("touching", touching)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a number >= 0 (0 switches it off, 1 is the default), got {value!r}")
        self.illumination, self.noise, self.touching = float(illumination), float(noise), float(touching)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, tv_tensors.Mask]]:
        rng = self._rng(index)
        cells = _place_cells(rng, self.image_size, self.touching)
        relative = np.stack([cell.relative_radius(self.image_size) for cell in cells])  # (n, H, W)
        nearest = relative.argmin(axis=0)  # where cells overlap, the pixel goes to the one it is deepest in
        radius = relative.min(axis=0)  # relative radius in that cell
        inside = radius <= 1
        instances = _consecutive_ids(np.where(inside, nearest + 1, 0))
        gaps = touching_gaps(instances)

        brightness = rng.uniform(*BRIGHTNESS, len(cells))[nearest]
        dome = EDGE + (1 - EDGE) * np.sqrt(np.clip(1 - radius**2, 0, 1))
        signal = np.where(inside, brightness * dome * _smooth_texture(rng, self.image_size), 0.0)
        light = light_field(rng, self.image_size, self.illumination)
        clean = (BACKGROUND + np.where(gaps, SEAM * signal, signal)) * light
        std = self.noise * np.sqrt(READ_NOISE**2 + SHOT_NOISE * clean)
        image = np.clip(clean + std * rng.normal(0, 1, clean.shape), 0, 1).astype(np.float32)

        target = {
            "mask": tv_tensors.Mask(torch.from_numpy((instances > 0) & ~gaps).long()),
            "instances": tv_tensors.Mask(torch.from_numpy(instances)),
        }
        image = tv_tensors.Image(torch.from_numpy(image)[None])
        return self.transforms(image, target) if self.transforms else (image, target)
