"""Joint augmentation of an image and its detection or segmentation target, with transforms.v2.

``torchvision.transforms.v2`` moves everything in a sample together: the ``Image``, the
``BoundingBoxes``, the instance ``Mask`` (N, H, W) and the class-map ``Mask`` (H, W) are flipped,
cropped and resized with the same parameters. Two steps are ours:

- after a crop, a box is the clipped old box, which can be larger than what is left of the object;
  ``boxes_from_masks`` replaces it by the box of the object's visible pixels;
- ``v2.SanitizeBoundingBoxes`` then drops objects cropped away (empty boxes) together with their
  labels and instance masks. It is given the per-object entries only: older torchvision releases
  also indexed the (H, W) class map with the per-box selection and crashed (pytorch/vision#9248).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms import v2

from cvcourse.data.synthetic import mask_boxes

PER_OBJECT_KEYS = ("boxes", "labels", "masks")
_sanitize = v2.SanitizeBoundingBoxes()


def boxes_from_masks(image: Any, target: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Set ``target["boxes"]`` to the boxes of ``target["masks"]`` (tight around what is visible)."""
    return image, {**target, "boxes": mask_boxes(target["masks"])}


def drop_empty_objects(image: Any, target: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``v2.SanitizeBoundingBoxes`` on boxes, labels and masks together; other entries pass unchanged."""
    objects = {key: target[key] for key in PER_OBJECT_KEYS}
    image, objects = _sanitize(image, objects)
    return image, {**target, **objects}


def train_transforms(image_size: int, *, min_scale: float = 0.3) -> v2.Compose:
    """Random horizontal flip, then a random crop of ``min_scale``..100% of the area resized to
    ``image_size`` (``v2.RandomResizedCrop``), then tight boxes and no empty objects.

    For scene samples: call it as ``transforms(image, target)`` with the target of ``ShapesScenes``
    (``boxes``, ``labels``, ``masks``; any other entry, such as ``semantic``, moves along).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer (pixels), got {image_size!r}")
    if not 0 < min_scale <= 1:
        raise ValueError(
            f"min_scale is the smallest fraction of the image a crop keeps and must be in (0, 1], "
            f"got {min_scale!r}; 0.3 is a good start, 1 disables the zoom"
        )
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomResizedCrop(image_size, scale=(min_scale, 1.0), antialias=True),
        boxes_from_masks,
        drop_empty_objects,
    ])


def segmentation_transforms(crop_size: int | tuple[int, int] | None = None, *, flips: bool = True,
                            elastic_alpha: float = 30.0, elastic_sigma: float = 5.0,
                            brightness: float = 0.0) -> v2.Compose:
    """Augmentation of ``(image, mask)`` pairs, the mask moved with the image: random left-right and up-down flips,
    a random crop to ``crop_size``, the U-Net paper's elastic deformation (Ronneberger et al. 2015, section 3.1:
    a smooth random displacement field; ``v2.ElasticTransform``, masks resampled by nearest neighbour, off with
    ``elastic_alpha=0``) and a brightness and contrast jitter of the image only (``brightness``, off by default).
    """
    if elastic_alpha < 0 or elastic_sigma <= 0 or brightness < 0:
        raise ValueError(f"elastic_alpha and brightness must be >= 0 and elastic_sigma > 0, got {elastic_alpha}, "
                         f"{brightness} and {elastic_sigma}; e.g. elastic_alpha=30, elastic_sigma=5.")
    steps: list[Any] = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()] if flips else []
    if crop_size is not None:
        steps.append(v2.RandomCrop(crop_size, pad_if_needed=True))
    if elastic_alpha > 0:
        steps.append(v2.ElasticTransform(alpha=elastic_alpha, sigma=elastic_sigma))
    if brightness > 0:
        steps.append(v2.ColorJitter(brightness=brightness, contrast=brightness))
    return v2.Compose(steps)


def collate_detection(
    batch: Sequence[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """``collate_fn`` for detection: images stacked to (B, 3, H, W), targets kept as a list of dicts
    (each image has its own number of objects, so targets cannot be stacked)."""
    if len(batch) == 0:
        raise ValueError("collate_detection got an empty batch; check the DataLoader's dataset is not empty")
    images, targets = zip(*batch)
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise ValueError(
            f"cannot stack images of different shapes {sorted(shapes)}; resize them to one size first, "
            f"e.g. with train_transforms(image_size) or v2.Resize((size, size))"
        )
    return torch.stack(images), list(targets)
