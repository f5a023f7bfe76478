"""Data of the object-detection chapter: shape scenes with a wide range of object sizes, their train /
val / test splits, box-aware augmentation, and COCO's small / medium / large sizes scaled to them.

``DetectionScenes`` is ``ShapesScenes`` with detection defaults: 128x128 images holding 2 to 8
overlapping shapes whose sizes run from 8 to 64 pixels (log-uniform, so small shapes are as common as
large ones), each keeping at least half of its area visible. Targets are the same: pixel-edge XYXY
``boxes`` of the visible parts, ``labels`` 1..4 (0 = background), instance ``masks`` and a
``semantic`` class map.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torchvision import tv_tensors
from torchvision.transforms import v2

from cvcourse.data.synthetic import (
    MAX_OBJECTS,
    MIN_SHAPE_SIZE,
    ShapesScenes,
    _check_int,
)
from cvcourse.data.transforms import boxes_from_masks, drop_empty_objects

SPLITS = ("train", "val", "test")
SMALLEST_SHAPE = 1 / 16  # default size range, as fractions of the image side: 8..64 px at 128 px
LARGEST_SHAPE = 1 / 2
# COCO calls an object small below 32x32 px and large above 96x96 px, on images of about 640x480 px:
# below 1/300 and above 3/100 of the image area. Kept as fractions, they fit any image size.
COCO_IMAGE_AREA = 640 * 480
COCO_SMALL_AREA = 32**2 / COCO_IMAGE_AREA
COCO_LARGE_AREA = 96**2 / COCO_IMAGE_AREA


class DetectionScenes(ShapesScenes):
    """``ShapesScenes`` for detection: larger images, more objects and a wider range of sizes.

    ``size_range`` is ``(smallest, largest)`` shape width in pixels, drawn log-uniformly; it defaults
    to ``(image_size / 16, image_size / 2)``, i.e. 8..64 px on the default 128x128 images (never below
    ``MIN_SHAPE_SIZE``). The other arguments and the items are those of ``ShapesScenes``.
    """

    def __init__(
        self,
        size: int = 1000,
        image_size: int = 128,
        *,
        seed: int = 0,
        min_objects: int = 2,
        max_objects: int = MAX_OBJECTS,
        size_range: tuple[float, float] | None = None,
        transforms: Callable | None = None,
    ) -> None:
        super().__init__(size, image_size, seed=seed, min_objects=min_objects, max_objects=max_objects,
                         transforms=transforms)
        if size_range is None:
            size_range = (max(MIN_SHAPE_SIZE, SMALLEST_SHAPE * image_size), LARGEST_SHAPE * image_size)
        smallest, largest = size_range
        if not MIN_SHAPE_SIZE <= smallest <= largest <= LARGEST_SHAPE * image_size:
            raise ValueError(
                f"size_range must be (smallest, largest) shape widths in pixels with {MIN_SHAPE_SIZE:g} <= smallest "
                f"<= largest <= {LARGEST_SHAPE * image_size:g} (half of image_size={image_size}), got {size_range!r}; "
                f"smaller shapes are not recognisable and larger ones do not fit"
            )
        self.size_range = (float(smallest), float(largest))


def detection_scenes(
    split: str, size: int, image_size: int = 128, *, seed: int = 0, transforms: Callable | None = None
) -> DetectionScenes:
    """The ``"train"``, ``"val"`` or ``"test"`` split of ``DetectionScenes``: disjoint by construction.

    Split ``k`` of base seed ``s`` is drawn with seed ``3 * s + k``, so no two (seed, split) pairs share
    a scene and every split of one seed is reproducible.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}; train on 'train', tune on 'val', "
                         "report on 'test'")
    _check_int("seed", seed, 0)
    return DetectionScenes(size, image_size, seed=len(SPLITS) * seed + SPLITS.index(split), transforms=transforms)


def coco_area_ranges(image_size: int) -> dict[str, tuple[float, float]]:
    """COCO's small / medium / large box-area ranges (px^2), scaled to square images of side ``image_size``.

    COCO's thresholds, 32^2 and 96^2 px on images of about 640x480 px, are kept as fractions of the
    image area: on 128x128 images a box is small below 54.6 px^2 (about 7x7) and large from 491.5 px^2
    (about 22x22) up. Ranges are ``[low, high)``; use them to report AP by object size.
    """
    _check_int("image_size", image_size, 1)
    area = image_size**2
    return {
        "small": (0.0, COCO_SMALL_AREA * area),
        "medium": (COCO_SMALL_AREA * area, COCO_LARGE_AREA * area),
        "large": (COCO_LARGE_AREA * area, math.inf),
    }


def detection_transforms(image_size: int, *, zoom_out: float = 1.5, min_crop: float = 0.5) -> v2.Compose:
    """Box-aware training augmentation as in SSD (Liu et al. 2016, sections 2.2 and 3.6), with transforms.v2.

    1. ``v2.RandomZoomOut`` (half the time): the image shrinks onto a grey canvas up to ``zoom_out``
       times its side, so objects get smaller;
    2. ``v2.RandomIoUCrop``: a crop of ``min_crop``..100% of each side overlapping some object, so
       objects get larger (aspect ratio 3:4..4:3, so shapes stay recognisable once resized);
    3. ``v2.RandomHorizontalFlip`` and ``v2.Resize`` back to ``image_size`` x ``image_size``;
    4. ``v2.ColorJitter``: brightness, contrast, saturation and hue (the image only; it also clamps
       the resized image back into [0, 1]);
    5. ``boxes_from_masks`` and ``drop_empty_objects``: each box becomes the box of its object's
       visible pixels and objects with none left are dropped, with their labels and masks.

    ``RandomIoUCrop`` marks an object whose box centre left the crop with an empty box; step 5 gives it
    the box of what is left of it instead, so boxes always agree with the masks and the class map (which
    still show it). Call it as ``transforms(image, target)`` with a ``DetectionScenes`` target;
    ``zoom_out=1`` and ``min_crop=1`` switch steps 1 and 2 off.
    """
    _check_int("image_size", image_size, 1)
    if not 1 <= zoom_out <= 4:
        raise ValueError(f"zoom_out is the largest canvas side as a multiple of the image side and must be in "
                         f"[1, 4], got {zoom_out!r}; 1.5 is a good start, 1 disables zooming out")
    if not 0 < min_crop <= 1:
        raise ValueError(f"min_crop is the smallest crop side as a fraction of the image side and must be in (0, 1], "
                         f"got {min_crop!r}; 0.5 is a good start, 1 disables cropping")
    return v2.Compose([
        v2.RandomZoomOut(fill={tv_tensors.Image: 0.5, "others": 0}, side_range=(1.0, zoom_out)),
        v2.RandomIoUCrop(min_scale=min_crop, min_aspect_ratio=3 / 4, max_aspect_ratio=4 / 3),
        v2.RandomHorizontalFlip(),
        v2.Resize((image_size, image_size), antialias=True),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
        boxes_from_masks,
        drop_empty_objects,
    ])
