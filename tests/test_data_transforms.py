"""Tests of the joint transforms: image, boxes, labels, instance masks and class map move together."""

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from cvcourse.data import (
    ShapesScenes,
    collate_detection,
    mask_boxes,
    semantic_map,
    train_transforms,
)
from cvcourse.data.transforms import drop_empty_objects

PIXEL_EDGES = torch.tensor([0.0, 0.0, 1.0, 1.0])  # masks_to_boxes gives the last pixel, boxes its far edge
SEEDS = [0, 1, 2, 3]


def plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(torch.Tensor)


@pytest.mark.parametrize("seed", SEEDS)
def test_flip_moves_image_boxes_and_masks_exactly(seed):
    dataset = ShapesScenes(8, 48, seed=seed)
    flip = v2.RandomHorizontalFlip(p=1.0)
    for i in range(len(dataset)):
        image, target = dataset[i]
        flipped_image, flipped = flip(image, target)
        assert torch.equal(plain(flipped_image), torch.flip(image, dims=[-1]))
        assert torch.equal(plain(flipped["masks"]), torch.flip(target["masks"], dims=[-1]))
        assert torch.equal(plain(flipped["semantic"]), torch.flip(target["semantic"], dims=[-1]))
        # v2 flips the box itself; pixel-edge boxes make it land exactly on the flipped mask's box.
        torch.testing.assert_close(plain(flipped["boxes"]), masks_to_boxes(flipped["masks"]) + PIXEL_EDGES)


@pytest.mark.parametrize("seed", SEEDS)
def test_train_transforms_keep_boxes_labels_masks_and_semantic_consistent(seed):
    torch.manual_seed(seed)
    dataset = ShapesScenes(25, 64, seed=seed, transforms=train_transforms(48, min_scale=0.2))
    dropped = 0
    for i in range(len(dataset)):
        image, target = dataset[i]
        boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, 48, 48)
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and tuple(boxes.canvas_size) == (48, 48)
        assert isinstance(masks, tv_tensors.Mask) and masks.shape[-2:] == (48, 48)
        assert len(boxes) == len(labels) == len(masks)
        assert masks.flatten(1).any(dim=1).all(), "objects cropped away must be dropped"
        torch.testing.assert_close(plain(boxes), masks_to_boxes(masks) + PIXEL_EDGES)
        assert torch.equal(plain(target["semantic"]), semantic_map(masks, labels))
        dropped += len(dataset.scene(i).shapes) - len(labels)
    assert dropped > 0, "with strong zoom some objects should leave the crop; the test would be vacuous"


@pytest.mark.parametrize("seed", SEEDS)
def test_train_transforms_move_the_image_with_the_masks(seed):
    """After flip + crop + resize, the pixels under each object's mask still have that object's colour."""
    torch.manual_seed(seed)
    dataset = ShapesScenes(15, 64, seed=seed)
    transforms = train_transforms(64)
    checked = 0
    for i in range(len(dataset)):
        scene = dataset.scene(i)
        image, target = transforms(*dataset[i])
        for label, mask in zip(target["labels"], target["masks"]):
            if mask.sum() < 50:  # small objects are mostly edge pixels, blended by the image's resize
                continue
            colour = image[:, mask].median(dim=1).values
            candidates = [shape.color for shape in scene.shapes if shape.label == label]
            assert min((colour - torch.tensor(c)).abs().max().item() for c in candidates) < 0.06
            checked += 1
    assert checked >= 15


def test_drop_empty_objects_keeps_labels_and_masks_aligned_and_semantic_untouched():
    # As many objects as image rows: the per-object selection must not be applied to the (H, W) map.
    size = 16
    masks = torch.zeros(size, size, size, dtype=torch.bool)
    for k in range(0, size, 2):  # odd objects are empty, as if cropped away
        masks[k, k, :k + 1] = True
    labels = torch.arange(size) % 4 + 1
    semantic = tv_tensors.Mask(torch.randint(0, 5, (size, size)))
    target = {"boxes": mask_boxes(masks), "labels": labels, "masks": tv_tensors.Mask(masks), "semantic": semantic}
    image = tv_tensors.Image(torch.rand(3, size, size))
    out_image, out = drop_empty_objects(image, target)
    kept = torch.arange(0, size, 2)
    assert torch.equal(out["labels"], labels[kept])
    assert torch.equal(plain(out["masks"]), masks[kept])
    assert torch.equal(plain(out["boxes"]), plain(target["boxes"])[kept])
    assert torch.equal(plain(out["semantic"]), plain(semantic)) and out_image is image


def test_collate_detection_with_a_dataloader():
    torch.manual_seed(0)
    dataset = ShapesScenes(6, 64, seed=0, transforms=train_transforms(32))
    images, targets = next(iter(DataLoader(dataset, batch_size=4, collate_fn=collate_detection)))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert isinstance(targets, list) and len(targets) == 4
    assert all(len(t["boxes"]) == len(t["labels"]) == len(t["masks"]) for t in targets)


def test_collate_detection_rejects_mixed_sizes_and_empty_batches():
    small, large = ShapesScenes(1, 32)[0], ShapesScenes(1, 64)[0]
    with pytest.raises(ValueError, match=r"cannot stack images of different shapes .* resize them to one size"):
        collate_detection([small, large])
    with pytest.raises(ValueError, match="empty batch"):
        collate_detection([])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, r"image_size must be a positive integer \(pixels\), got 0"),
        (("64",), {}, r"image_size must be a positive integer \(pixels\), got '64'"),
        ((64,), {"min_scale": 0.0}, r"min_scale .* must be in \(0, 1\], got 0.0; 0.3 is a good start"),
    ],
)
def test_train_transforms_reject_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_transforms(*args, **kwargs)
