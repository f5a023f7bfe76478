"""Synthetic shape datasets, generated on the fly: no download, deterministic per seed.

Two datasets share one renderer:

- ``SingleShapes``: one shape per image, for classification.
- ``ShapesScenes``: several overlapping shapes per image, with boxes, instance masks and a class map,
  for detection and segmentation.

Item ``i`` depends only on ``(seed, i)``: it has its own random generator
(``numpy.random.default_rng([seed, i])``), so random access is reproducible and datasets with
different seeds are different splits (train / val / test).

Targets follow torchvision's conventions (``torchvision.tv_tensors``): boxes are XYXY
``BoundingBoxes`` whose corners are pixel edges, so a box covers whole pixels and moves exactly with
``torchvision.transforms.v2`` flips, crops and resizes; label 0 is the background.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")
MAX_OBJECTS = 8  # per scene, on images of 64 pixels or more
MIN_VISIBLE_FRACTION = 0.5  # of its own area, each shape in a scene keeps at least this much visible
MIN_SHAPE_SIZE = 6.0  # pixels; smaller shapes are not recognisable
NOISE_STD = 0.03  # mild Gaussian pixel noise on top of the painted image
PLACEMENT_TRIES = 100


@dataclass(frozen=True)
class Shape:
    """One shape of a picture: what it is, where it is, and its colour.

    ``size`` is the width of the unrotated shape in pixels, ``center`` is ``(x, y)`` in pixels,
    ``angle`` is a rotation in degrees and ``color`` is RGB in [0, 1].
    """

    kind: str
    center: tuple[float, float]
    size: float
    angle: float
    color: tuple[float, float, float]

    @property
    def label(self) -> int:
        """Detection label: 1..len(SHAPE_CLASSES), 0 being the background."""
        return SHAPE_CLASSES.index(self.kind) + 1

    def mask(self, image_size: int) -> torch.Tensor:
        """The full (unoccluded) shape as a bool mask (image_size, image_size)."""
        return render_shape(self.kind, self.center, self.size, self.angle, image_size)


def max_objects_for(image_size: int) -> int:
    """Most shapes a scene of this size holds: one per 8 pixels of width, at most MAX_OBJECTS.

    With more, there is too little room for every shape to keep MIN_VISIBLE_FRACTION of its area.
    """
    return min(MAX_OBJECTS, image_size // 8)


@functools.lru_cache(maxsize=8)
def _pixel_centers(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y coordinates of every pixel centre, two (H, W) tensors (read-only: they are cached)."""
    coords = torch.arange(image_size, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    return xs, ys


def render_shape(
    kind: str, center: tuple[float, float], size: float, angle: float, image_size: int
) -> torch.Tensor:
    """Rasterise one shape: a bool mask (H, W), True where the pixel centre lies inside the shape.

    Every pixel centre is rotated into the shape's own frame ``(u, v)``, where the shape is an
    axis-aligned circle, square, triangle or cross of width ``size`` centred on the origin.
    """
    if kind not in SHAPE_CLASSES:
        raise ValueError(f"unknown shape kind {kind!r}; choose one of {SHAPE_CLASSES}")
    xs, ys = _pixel_centers(image_size)
    dx, dy = xs - center[0], ys - center[1]
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    half = size / 2
    if kind == "circle":
        return u**2 + v**2 <= half**2
    if kind == "square":
        return torch.maximum(u.abs(), v.abs()) <= half
    if kind == "triangle":
        # Equilateral, side `size`, centred on its centroid: inside all three edges, whose outward
        # normals point at 90, 210 and 330 degrees and which lie one inradius from the centre.
        inradius = size / (2 * math.sqrt(3))
        inside = torch.ones_like(u, dtype=torch.bool)
        for normal in (90.0, 210.0, 330.0):
            a = math.radians(normal)
            inside &= u * math.cos(a) + v * math.sin(a) <= inradius
        return inside
    arm = size / 6  # cross: two perpendicular bars of length `size` and width `size / 3`
    return ((u.abs() <= half) & (v.abs() <= arm)) | ((u.abs() <= arm) & (v.abs() <= half))


def gradient_background(
    start: Sequence[float], end: Sequence[float], angle: float, image_size: int
) -> torch.Tensor:
    """A linear colour gradient (3, H, W) from RGB ``start`` to ``end`` along direction ``angle``."""
    xs, ys = _pixel_centers(image_size)
    direction = math.radians(angle)
    along = (xs - image_size / 2) * math.cos(direction) + (ys - image_size / 2) * math.sin(direction)
    t = (along / image_size + 0.5).clamp(0, 1)
    start_rgb = torch.tensor(start, dtype=torch.float32)[:, None, None]
    end_rgb = torch.tensor(end, dtype=torch.float32)[:, None, None]
    return start_rgb + t * (end_rgb - start_rgb)


def random_gradient(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Random ``(start, end, angle)`` for ``gradient_background``: a random colour that drifts mildly."""
    start = rng.uniform(0, 1, 3)
    end = np.clip(start + rng.uniform(-0.3, 0.3, 3), 0, 1)
    return start, end, float(rng.uniform(0, 360))


def _distance_to_segment(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Euclidean distance of each point (K, 3) to the segment from ``start`` to ``end``."""
    step = end - start
    t = np.clip((points - start) @ step / max(float(step @ step), 1e-12), 0, 1)
    return np.linalg.norm(points - (start + t[:, None] * step), axis=1)


def random_color(
    rng: np.random.Generator,
    gradient_ends: tuple[np.ndarray, np.ndarray],
    others: Sequence[Sequence[float]] = (),
    candidates: int = 16,
) -> tuple[float, float, float]:
    """The most distinct of a few random RGB colours: farthest from every background colour (the
    segment between the gradient's two ends) and from the ``others`` already used.

    The colour is drawn without looking at the class, so it tells nothing about it.
    """
    colors = rng.uniform(0, 1, (candidates, 3))
    distance = _distance_to_segment(colors, *gradient_ends)
    for other in others:
        distance = np.minimum(distance, np.linalg.norm(colors - np.asarray(other), axis=1))
    return tuple(float(c) for c in colors[np.argmax(distance)])


def random_pose(
    rng: np.random.Generator, image_size: int, size_range: tuple[float, float]
) -> tuple[tuple[float, float], float, float]:
    """Random ``(center, size, angle)`` of a shape that lies fully inside the image.

    The size is log-uniform in ``size_range`` (as many small shapes as large ones); the centre keeps
    ``size / sqrt(2)`` (the farthest any shape reaches from its centre) away from the borders.
    """
    size = float(np.exp(rng.uniform(math.log(size_range[0]), math.log(size_range[1]))))
    reach = size / math.sqrt(2)
    center = (float(rng.uniform(reach, image_size - reach)), float(rng.uniform(reach, image_size - reach)))
    return center, size, float(rng.uniform(0, 360))


def place_shapes(
    rng: np.random.Generator,
    image_size: int,
    count: int,
    size_range: tuple[float, float],
    gradient_ends: tuple[np.ndarray, np.ndarray],
) -> tuple[list[Shape], torch.Tensor]:
    """Random shapes drawn one over the other, each keeping ``MIN_VISIBLE_FRACTION`` of its area visible.

    Returns the shapes in painting order and their visible masks, bool (count, H, W). A pose that would
    hide too much of an earlier shape is drawn again, with a smaller largest size at every try.
    """
    shapes: list[Shape] = []
    visible = torch.zeros(0, image_size, image_size, dtype=torch.bool)
    areas = torch.zeros(0)
    for _ in range(count):
        kind = SHAPE_CLASSES[rng.integers(len(SHAPE_CLASSES))]
        color = random_color(rng, gradient_ends, [shape.color for shape in shapes])
        smallest, largest = size_range
        for attempt in range(PLACEMENT_TRIES):
            shrunk = max(smallest, largest * (1 - attempt / PLACEMENT_TRIES))
            shape = Shape(kind, *random_pose(rng, image_size, (smallest, shrunk)), color)
            mask = shape.mask(image_size)
            still_visible = (visible & ~mask).flatten(1).sum(dim=1)
            if bool((still_visible >= MIN_VISIBLE_FRACTION * areas).all()):
                break
        else:
            raise RuntimeError(
                f"could not place {count} shapes on a {image_size}x{image_size} image with each keeping "
                f"{MIN_VISIBLE_FRACTION:.0%} visible; use fewer objects or a larger image_size"
            )
        shapes.append(shape)
        visible = torch.cat([visible & ~mask, mask[None]])
        areas = torch.cat([areas, mask.sum()[None].float()])
    return shapes, visible


def paint_shapes(background: torch.Tensor, shapes: Sequence[Shape]) -> torch.Tensor:
    """Paint the shapes in order over a (3, H, W) background (painter's algorithm: later on top)."""
    image = background.clone()
    for shape in shapes:
        mask = shape.mask(image.shape[-1])
        image[:, mask] = torch.tensor(shape.color, dtype=image.dtype)[:, None]
    return image


def add_noise(image: torch.Tensor, rng: np.random.Generator, std: float = NOISE_STD) -> torch.Tensor:
    """Add Gaussian pixel noise of standard deviation ``std`` and clamp back to [0, 1]."""
    noise = torch.from_numpy(rng.normal(0.0, std, image.shape).astype(np.float32))
    return (image + noise).clamp(0, 1)


def mask_boxes(masks: torch.Tensor) -> tv_tensors.BoundingBoxes:
    """XYXY boxes (N, 4) around bool masks (N, H, W), with pixel-edge corners.

    ``torchvision.ops.masks_to_boxes`` returns the index of the last pixel as x2, y2; adding 1 gives the
    box that covers that pixel entirely, which is the box v2 transforms flip and resize exactly.
    Empty masks get the degenerate box (0, 0, 0, 0), which ``v2.SanitizeBoundingBoxes`` removes.
    """
    boxes = torch.zeros(masks.shape[0], 4)
    not_empty = masks.flatten(1).any(dim=1)
    boxes[not_empty] = masks_to_boxes(masks[not_empty]) + torch.tensor([0.0, 0.0, 1.0, 1.0])
    return tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=tuple(masks.shape[-2:]))


def semantic_map(masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Class map (H, W) int64: each instance mask painted with its label in order, 0 elsewhere."""
    semantic = torch.zeros(masks.shape[-2:], dtype=torch.int64)
    for mask, label in zip(masks, labels):
        semantic[mask] = label
    return semantic


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class _SeededDataset(Dataset):
    """Shared by the synthetic datasets: length, seed, transforms, index check, per-item generator."""

    def __init__(self, size: int, image_size: int, seed: int, transforms: Callable | None) -> None:
        self.size = _check_int("size", size, 1)
        self.image_size = _check_int("image_size", image_size, 16)
        self.seed = _check_int("seed", seed, 0)
        self.transforms = transforms

    def __len__(self) -> int:
        return self.size

    def _rng(self, index: int) -> np.random.Generator:
        index = operator.index(index)
        if not 0 <= index < self.size:
            raise IndexError(
                f"index {index} is out of range for {type(self).__name__} of size {self.size}; "
                f"valid indices are 0..{self.size - 1}"
            )
        return np.random.default_rng([self.seed, index])

    def _background(self, rng: np.random.Generator) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray]]:
        """A random gradient background (3, H, W) and its two end colours."""
        start, end, angle = random_gradient(rng)
        return gradient_background(start, end, angle, self.image_size), (start, end)


class Scene(NamedTuple):
    """An untransformed scene: the image, its shapes in painting order, and their visible masks."""

    image: tv_tensors.Image
    shapes: list[Shape]
    masks: torch.Tensor


class ShapesScenes(_SeededDataset):
    """Scenes of ``min_objects..max_objects`` overlapping shapes, for detection and segmentation.

    ``dataset[i]`` is ``(image, target)``: ``image`` is a float ``tv_tensors.Image`` (3, H, W) in
    [0, 1]; ``target`` has ``boxes`` (``BoundingBoxes`` (N, 4), XYXY, of the visible parts), ``labels``
    (int64 (N,), 1..4), ``masks`` (``Mask`` (N, H, W) bool, visible parts) and ``semantic`` (``Mask``
    (H, W) int64, 0 = background). ``transforms(image, target)`` is applied last, if given.
    """

    class_names = ("background",) + SHAPE_CLASSES
    num_classes = len(class_names)

    def __init__(
        self,
        size: int = 1000,
        image_size: int = 64,
        *,
        seed: int = 0,
        min_objects: int = 1,
        max_objects: int = 4,
        transforms: Callable | None = None,
    ) -> None:
        super().__init__(size, image_size, seed, transforms)
        self.min_objects = _check_int("min_objects", min_objects, 1)
        self.max_objects = _check_int("max_objects", max_objects, 1)
        limit = max_objects_for(image_size)
        if not min_objects <= max_objects <= limit:
            raise ValueError(
                f"need min_objects <= max_objects <= {limit} (the most shapes a {image_size}x{image_size} "
                f"image holds with each half visible), got min_objects={min_objects}, "
                f"max_objects={max_objects}; lower them or raise image_size"
            )
        self.size_range = (max(MIN_SHAPE_SIZE, 0.1 * image_size), 0.5 * image_size)

    def scene(self, index: int) -> Scene:
        """Item ``index`` before any transform, with the shapes it was drawn from."""
        rng = self._rng(index)
        background, gradient_ends = self._background(rng)
        count = int(rng.integers(self.min_objects, self.max_objects + 1))
        shapes, masks = place_shapes(rng, self.image_size, count, self.size_range, gradient_ends)
        image = add_noise(paint_shapes(background, shapes), rng)
        return Scene(tv_tensors.Image(image), shapes, masks)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
        image, shapes, masks = self.scene(index)
        labels = torch.tensor([shape.label for shape in shapes], dtype=torch.int64)
        target = {
            "boxes": mask_boxes(masks),
            "labels": labels,
            "masks": tv_tensors.Mask(masks),
            "semantic": tv_tensors.Mask(semantic_map(masks, labels)),
        }
        return self.transforms(image, target) if self.transforms else (image, target)


class SingleShapes(_SeededDataset):
    """One shape per image for classification: ``dataset[i]`` is ``(image, label)``.

    ``image`` is a float ``tv_tensors.Image`` (3, H, W) in [0, 1]; ``label`` is an int in
    0..len(SHAPE_CLASSES)-1 indexing ``class_names``. Colour, size (30-65% of the image), rotation,
    position and background are random. ``transforms(image)`` is applied last, if given.
    """

    class_names = SHAPE_CLASSES
    num_classes = len(class_names)

    def __init__(
        self, size: int = 1000, image_size: int = 32, *, seed: int = 0, transforms: Callable | None = None
    ) -> None:
        super().__init__(size, image_size, seed, transforms)
        self.size_range = (max(MIN_SHAPE_SIZE, 0.3 * image_size), 0.65 * image_size)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, int]:
        rng = self._rng(index)
        background, gradient_ends = self._background(rng)
        label = int(rng.integers(len(SHAPE_CLASSES)))
        pose = random_pose(rng, self.image_size, self.size_range)
        shape = Shape(SHAPE_CLASSES[label], *pose, random_color(rng, gradient_ends))
        image = tv_tensors.Image(add_noise(paint_shapes(background, [shape]), rng))
        return (self.transforms(image) if self.transforms else image), label
