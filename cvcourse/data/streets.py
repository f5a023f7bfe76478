"""Synthetic street scenes for semantic segmentation, drawn in perspective like a dash-cam frame.

In the spirit of Cityscapes (Cordts et al., CVPR 2016), at a size a CPU can train on: a road narrowing
towards a vanishing point on the horizon, sidewalks on both sides, building facades receding to the
same point, trees, dashed lane markings, cars on the road and pedestrians on the sidewalks, each
smaller the farther away it stands. Colours, brightness and textures are random and there is pixel
noise, so a pixel's colour alone does not tell its class: a grey pixel can be road, sidewalk, a
building or a car. Shape and position in the scene do.

Perspective in one line: a ground point on image row ``y`` below the horizon row ``h`` is at a depth
proportional to ``1 / s`` with ``s = (y - h) / (H - h)``, so lengths on the ground and the sizes of
objects standing there scale with ``s`` (1 at the bottom row, 0 on the horizon).

Item ``i`` depends only on ``(seed, i)`` (see ``cvcourse.data.synthetic``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torchvision import tv_tensors

from cvcourse.data.synthetic import _SeededDataset, add_noise, random_color

STREET_CLASSES = ("sky", "building", "vegetation", "road", "sidewalk", "lane marking", "car", "pedestrian")
SKY, BUILDING, VEGETATION, ROAD, SIDEWALK, LANE, CAR, PEDESTRIAN = range(len(STREET_CLASSES))

HORIZON = (0.35, 0.5)  # of the height: the horizon row
ROAD_HALF_WIDTH = (0.3, 0.42)  # of the width: half the road's width on the bottom row
SIDEWALK_WIDTH = (0.3, 0.6)  # of the road's half width
LANE_DIVIDERS = ((0.0,), (-1 / 3, 1 / 3))  # positions across the road (-1 = left edge, 1 = right edge)
LANE_WIDTH = 0.12  # of the road's half width
DASHES_PER_DEPTH, DASH_DEPTHS = 1.5, (1.0, 6.0)  # dashes per unit of depth (1 / s), drawn between these depths
CAR_WIDTH, CAR_HEIGHT = 0.5, 0.75  # of the road's half width, and of the car's width
PEDESTRIAN_HEIGHT = 0.5  # of the image height, at the bottom row (s = 1)
TREE_HEIGHT = 0.8  # of the image height, at the bottom row
NEAREST, FARTHEST = 0.95, 0.3  # the range of s where cars, pedestrians and trees stand
PEDESTRIAN_FARTHEST = 0.5  # pedestrians stay near enough to be at least ~16x5 pixels at height 64
TEXTURE = {SKY: 0.01, BUILDING: 0.04, VEGETATION: 0.2, ROAD: 0.08, SIDEWALK: 0.05, LANE: 0.03, CAR: 0.03,
           PEDESTRIAN: 0.05}  # relative per-pixel brightness variation of each class
BUILDING_COLORS = ((0.75, 0.68, 0.55), (0.6, 0.35, 0.3), (0.55, 0.55, 0.58), (0.85, 0.84, 0.8))
SKIN_COLORS = ((0.95, 0.8, 0.7), (0.8, 0.6, 0.45), (0.45, 0.3, 0.2))


def _jitter(rng: np.random.Generator, rgb: Sequence[float], amount: float) -> np.ndarray:
    """``rgb`` moved by up to ``amount`` in each channel, kept in [0, 1]."""
    return np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0, 1)


class _Canvas:
    """An RGB image (H, W, 3) and its class map (H, W), painted together, with pixel-centre grids."""

    def __init__(self, height: int, width: int) -> None:
        self.ys, self.xs = np.mgrid[0:height, 0:width] + 0.5
        self.rgb = np.zeros((height, width, 3))
        self.classes = np.zeros((height, width), dtype=np.int64)

    def paint(self, region: np.ndarray, color: Sequence[float], label: int) -> None:
        self.rgb[region] = color
        self.classes[region] = label

    def box(self, left: float, right: float, top: float, bottom: float) -> np.ndarray:
        """Pixels whose centre lies in the rectangle."""
        return (self.xs >= left) & (self.xs < right) & (self.ys >= top) & (self.ys < bottom)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        """Pixels whose centre lies in the axis-aligned ellipse."""
        return ((self.xs - cx) / rx) ** 2 + ((self.ys - cy) / ry) ** 2 <= 1


class _Street:
    """The scene's perspective: horizon row, vanishing point, road and sidewalk widths, in pixels."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.horizon = rng.uniform(*HORIZON) * height
        self.vanish = rng.uniform(0.4, 0.6) * width  # column of the vanishing point
        self.road = rng.uniform(*ROAD_HALF_WIDTH) * width  # half width on the bottom row
        self.sidewalk = rng.uniform(*SIDEWALK_WIDTH)  # of the road's half width

    def scale(self, y: np.ndarray | float) -> np.ndarray | float:
        """``s`` of a ground point on row ``y``: 1 on the bottom row, 0 on the horizon, < 0 above it."""
        return (y - self.horizon) / (self.height - self.horizon)

    def depth(self, y: np.ndarray | float) -> np.ndarray | float:
        """Distance of a ground point on row ``y`` over that of the bottom row: ``1 / s`` (huge above the horizon)."""
        return 1 / np.maximum(self.scale(y), 1e-9)

    def row(self, scale: float) -> float:
        """The image row of ground points at ``scale``."""
        return self.horizon + scale * (self.height - self.horizon)

    def column(self, across: float, scale: np.ndarray | float) -> np.ndarray | float:
        """Image column of the ground point ``across`` road half widths right of the road's middle."""
        return self.vanish + across * self.road * scale


def _paint_sky(rng: np.random.Generator, canvas: _Canvas, street: _Street) -> None:
    """A vertical gradient from a random blue or grey at the top to a paler colour at the horizon."""
    top, low = _jitter(rng, (0.45, 0.6, 0.85), 0.15), _jitter(rng, (0.8, 0.85, 0.9), 0.1)
    fade = np.clip(canvas.ys / street.horizon, 0, 1)[..., None]
    canvas.rgb[:] = top + fade * (low - top)


def _paint_facades(rng: np.random.Generator, canvas: _Canvas, street: _Street) -> None:
    """1-4 buildings on each side: vertical walls standing on the sidewalks' outer edges, with windows.

    On such a wall, the slope from the vanishing point, (y - horizon) / |x - vanish|, is proportional to
    how far below eye level a point is (0 on the horizon, ``foot`` at the bottom of the wall, negative
    above eye level), and 1 / |x - vanish| to its distance along the street: windows form a grid in
    those two coordinates. The ground, painted next, covers the walls' lower parts.
    """
    side = np.abs(canvas.xs - street.vanish) + 1e-6
    slope = (canvas.ys - street.horizon) / side
    foot = (street.height - street.horizon) / (street.road * (1 + street.sidewalk))
    for sign, farthest_column in ((-1, street.vanish), (1, street.width - street.vanish)):
        reach = np.where(np.sign(canvas.xs - street.vanish) == sign, side / farthest_column, -1)
        edges = np.sort(rng.uniform(0, 1, rng.integers(1, 4)))  # where one building ends and the next starts
        for start, end in zip(np.concatenate([[0], edges]), np.concatenate([edges, [1]])):
            roof = -rng.uniform(0.4, 1.5) * foot  # 1.4 to 2.5 times the eye level
            facade = (reach >= start) & (reach < end) & (slope >= roof)
            color = _jitter(rng, BUILDING_COLORS[rng.integers(len(BUILDING_COLORS))], 0.1)
            canvas.paint(facade, color, BUILDING)
            floor, bay = rng.uniform(0.3, 0.5) * foot, rng.uniform(8, 14) / farthest_column**2
            windows = (np.mod(slope, floor) < 0.5 * floor) & (np.mod(1 / side, bay) < 0.5 * bay)
            wide_enough = bay * side**2 > 3  # windows at least ~1.5 pixels wide: no aliasing far away
            upper_floors = slope < foot - floor
            canvas.paint(facade & windows & wide_enough & upper_floors, color * rng.uniform(0.3, 0.6), BUILDING)


def _paint_ground(rng: np.random.Generator, canvas: _Canvas, street: _Street) -> tuple[np.ndarray, np.ndarray]:
    """The road and, on both sides, a sidewalk of a different grey with tile seams; returns both colours."""
    scale = street.scale(canvas.ys)
    across = np.abs(canvas.xs - street.vanish) / (street.road * np.maximum(scale, 1e-9))
    ground = scale > 0
    road_grey = rng.uniform(0.25, 0.45)
    road_color = _jitter(rng, (road_grey,) * 3, 0.03)
    sidewalk_color = _jitter(rng, (road_grey + rng.choice([-1, 1]) * rng.uniform(0.12, 0.25),) * 3, 0.05)
    sidewalk = ground & (across > 1) & (across <= 1 + street.sidewalk)
    canvas.paint(sidewalk, sidewalk_color, SIDEWALK)
    tile_seams = np.mod(street.depth(canvas.ys), 0.25) < 0.03
    canvas.paint(sidewalk & tile_seams, sidewalk_color * 0.8, SIDEWALK)
    canvas.paint(ground & (across <= 1), road_color, ROAD)
    return road_color, sidewalk_color


def _paint_lane_markings(rng: np.random.Generator, canvas: _Canvas, street: _Street) -> None:
    """Dashed dividers: dash or gap alternate every 1 / (2 * DASHES_PER_DEPTH) of depth (depth = 1 / s)."""
    scale, depth = street.scale(canvas.ys), street.depth(canvas.ys)
    dashes = np.mod(depth * DASHES_PER_DEPTH + rng.uniform(0, 1), 1) < 0.5
    near = (depth >= DASH_DEPTHS[0]) & (depth <= DASH_DEPTHS[1])
    color = _jitter(rng, (0.95, 0.95, 0.92) if rng.random() < 0.7 else (0.95, 0.8, 0.3), 0.05)
    for across in LANE_DIVIDERS[rng.integers(len(LANE_DIVIDERS))]:
        on_line = np.abs(canvas.xs - street.column(across, scale)) <= LANE_WIDTH / 2 * street.road * scale + 0.5
        canvas.paint(near & dashes & on_line, color, LANE)


def _paint_car(rng: np.random.Generator, canvas: _Canvas, street: _Street, scale: float, road: np.ndarray) -> None:
    """A car seen from behind, standing on row ``row(scale)``: wheels, body, cabin with its rear window."""
    width = CAR_WIDTH * street.road * scale
    height = CAR_HEIGHT * width
    center = street.column(rng.uniform(-0.7, 0.7), scale)
    left, right, bottom = center - width / 2, center + width / 2, street.row(scale)
    body = random_color(rng, (road, road))
    for wheel_left in (left + 0.08 * width, right - 0.28 * width):
        canvas.paint(canvas.box(wheel_left, wheel_left + 0.2 * width, bottom - 0.25 * height, bottom), (0.06,) * 3, CAR)
    canvas.paint(canvas.box(left, right, bottom - 0.65 * height, bottom - 0.15 * height), body, CAR)
    canvas.paint(canvas.box(left + 0.12 * width, right - 0.12 * width, bottom - height, bottom - 0.65 * height),
                 body, CAR)
    glass = _jitter(rng, (0.15, 0.18, 0.25), 0.05)
    canvas.paint(canvas.box(left + 0.18 * width, right - 0.18 * width, bottom - 0.93 * height, bottom - 0.68 * height),
                 glass, CAR)
    for light_left in (left + 0.04 * width, right - 0.16 * width):
        canvas.paint(canvas.box(light_left, light_left + 0.12 * width, bottom - 0.55 * height, bottom - 0.45 * height),
                     (0.8, 0.1, 0.1), CAR)


def _paint_pedestrian(rng: np.random.Generator, canvas: _Canvas, street: _Street, scale: float,
                      behind: np.ndarray) -> None:
    """A pedestrian on a sidewalk, standing on row ``row(scale)``: legs, torso and head."""
    height = PEDESTRIAN_HEIGHT * street.height * scale
    across = rng.choice([-1, 1]) * (1 + street.sidewalk * rng.uniform(0.2, 0.8))
    center, bottom = street.column(across, scale), street.row(scale)
    trousers, shirt = random_color(rng, (behind, behind)), random_color(rng, (behind, behind))
    stride = rng.uniform(0.02, 0.08) * height
    for leg in (-1, 1):
        leg_center = center + leg * (0.07 * height + stride)
        canvas.paint(canvas.box(leg_center - 0.06 * height, leg_center + 0.06 * height, bottom - 0.45 * height,
                                bottom), trousers, PEDESTRIAN)
    canvas.paint(canvas.box(center - 0.16 * height, center + 0.16 * height, bottom - 0.82 * height,
                            bottom - 0.42 * height), shirt, PEDESTRIAN)
    skin = _jitter(rng, SKIN_COLORS[rng.integers(len(SKIN_COLORS))], 0.05)
    canvas.paint(canvas.ellipse(center, bottom - 0.9 * height, 0.08 * height, 0.1 * height), skin, PEDESTRIAN)


def _paint_tree(rng: np.random.Generator, canvas: _Canvas, street: _Street, scale: float) -> None:
    """A tree near a sidewalk's outer edge, standing on row ``row(scale)``: trunk and leafy crown."""
    height = TREE_HEIGHT * street.height * scale
    across = rng.choice([-1, 1]) * (1 + street.sidewalk * rng.uniform(0.7, 0.95))
    center, bottom = street.column(across, scale), street.row(scale)
    trunk = _jitter(rng, (0.35, 0.25, 0.15), 0.05)
    canvas.paint(canvas.box(center - 0.04 * height, center + 0.04 * height, bottom - 0.6 * height, bottom),
                 trunk, VEGETATION)
    leaves = _jitter(rng, (0.25, 0.45, 0.2), 0.1)
    radius = rng.uniform(0.2, 0.3) * height
    canvas.paint(canvas.ellipse(center, bottom - height + radius, radius, radius * rng.uniform(0.9, 1.2)),
                 leaves, VEGETATION)


class StreetScenes(_SeededDataset):
    """Street scenes for semantic segmentation with the classes of ``STREET_CLASSES`` (0 = sky).

    ``dataset[i]`` is ``(image, mask)``: ``image`` is a float ``tv_tensors.Image`` (3, H, W) in [0, 1] and
    ``mask`` a ``tv_tensors.Mask`` (H, W) int64 of class ids. Every scene has sky, buildings, road,
    sidewalks, lane markings, 1-3 trees, 1-4 cars and 1-4 pedestrians (some may be hidden behind
    nearer objects). ``image_size`` is ``(height, width)``. ``transforms(image, mask)`` is applied last.
    """

    class_names = STREET_CLASSES
    num_classes = len(class_names)

    def __init__(
        self,
        size: int = 500,
        image_size: tuple[int, int] = (64, 128),
        *,
        seed: int = 0,
        transforms: Callable | None = None,
    ) -> None:
        if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
                or not all(isinstance(side, int) and not isinstance(side, bool) and side >= 32 for side in image_size)):
            raise ValueError(f"image_size must be (height, width), two integers >= 32, got {image_size!r}; "
                             "street scenes are wide, e.g. (64, 128)")
        super().__init__(size, min(image_size), seed, transforms)  # checks size and seed
        self.image_size = tuple(image_size)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        rng = self._rng(index)
        height, width = self.image_size
        canvas, street = _Canvas(height, width), _Street(rng, height, width)
        _paint_sky(rng, canvas, street)
        _paint_facades(rng, canvas, street)
        road, sidewalk = _paint_ground(rng, canvas, street)
        _paint_lane_markings(rng, canvas, street)
        things = ([(rng.uniform(FARTHEST, NEAREST), "tree") for _ in range(rng.integers(1, 4))]
                  + [(rng.uniform(FARTHEST, NEAREST), "car") for _ in range(rng.integers(1, 5))]
                  + [(rng.uniform(PEDESTRIAN_FARTHEST, NEAREST), "pedestrian") for _ in range(rng.integers(1, 5))])
        for scale, kind in sorted(things):  # far to near: nearer things hide farther ones
            if kind == "tree":
                _paint_tree(rng, canvas, street, scale)
            elif kind == "car":
                _paint_car(rng, canvas, street, scale, road)
            else:
                _paint_pedestrian(rng, canvas, street, scale, sidewalk)

        texture = np.array([TEXTURE[label] for label in range(len(STREET_CLASSES))])[canvas.classes]
        shaded = canvas.rgb * (1 + texture * rng.normal(0, 1, canvas.classes.shape))[..., None]
        shaded *= rng.uniform(0.7, 1.15)  # overall brightness: a dull or a sunny day
        image = torch.from_numpy(np.clip(shaded, 0, 1).transpose(2, 0, 1).astype(np.float32))
        image = tv_tensors.Image(add_noise(image, rng, std=rng.uniform(0.01, 0.04)))
        mask = tv_tensors.Mask(torch.from_numpy(canvas.classes))
        return self.transforms(image, mask) if self.transforms else (image, mask)
