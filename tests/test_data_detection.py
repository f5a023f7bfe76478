"""Tests of the detection scenes, their splits, COCO size ranges and the box-aware augmentation."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from cvcourse.data import (
    DetectionScenes,
    ShapesScenes,
    coco_area_ranges,
    collate_detection,
    detection_scenes,
    detection_transforms,
    semantic_map,
)

PIXEL_EDGES = torch.tensor([0.0, 0.0, 1.0, 1.0])  # masks_to_boxes gives the last pixel, boxes its far edge


def plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(torch.Tensor)


def box_areas(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def assert_consistent(image, target, image_size):
    """Types, sizes, one box / label / mask per object, boxes tight around non-empty masks, class map agrees."""
    boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, image_size, image_size)
    assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and tuple(boxes.canvas_size) == (image_size, image_size)
    assert isinstance(masks, tv_tensors.Mask) and masks.shape == (len(labels), image_size, image_size)
    assert len(boxes) == len(labels) and labels.dtype == torch.int64 and set(labels.tolist()) <= {1, 2, 3, 4}
    assert masks.flatten(1).any(dim=1).all(), "objects with no visible pixel must be dropped"
    torch.testing.assert_close(plain(boxes), masks_to_boxes(masks) + PIXEL_EDGES)
    assert torch.equal(plain(target["semantic"]), semantic_map(masks, labels))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scenes():
    return DetectionScenes(120, seed=5)


def test_scene_items_follow_the_target_conventions(scenes):
    assert scenes.image_size == 128 and scenes.size_range == (8.0, 64.0)
    assert scenes.class_names == ("background", "circle", "square", "triangle", "cross")
    counts = []
    for i in range(15):
        image, target = scenes[i]
        assert_consistent(image, target, 128)
        counts.append(len(target["labels"]))
    assert min(counts) >= 2 and max(counts) == 8


def test_shape_sizes_are_log_uniform_from_8_to_64_pixels(scenes):
    sizes = torch.tensor([shape.size for i in range(len(scenes)) for shape in scenes.scene(i).shapes])
    assert 8 <= sizes.min() < 9 and 55 < sizes.max() <= 64
    # Log-uniform: as many shapes below the geometric middle (22.6 px) as above it; placement shrinks a
    # large shape that would hide too much of the others, which tilts the balance a little to small.
    below = (sizes < math.sqrt(8 * 64)).float().mean()
    assert 0.5 <= below <= 0.65, below


def test_boxes_spread_over_coco_medium_and_large(scenes):
    """Box areas by COCO's ranges scaled to 128x128 (small < 54.6 px^2 <= medium < 491.5 px^2 <= large)."""
    areas = torch.cat([box_areas(plain(scenes[i][1]["boxes"])) for i in range(len(scenes))])
    share = {name: ((low <= areas) & (areas < high)).float().mean().item()
             for name, (low, high) in coco_area_ranges(128).items()}
    assert share["small"] < 0.05 and 0.4 < share["medium"] < 0.7 and 0.3 < share["large"] < 0.6, share
    assert areas.sqrt().min() < 8 and areas.sqrt().max() > 64, "from shapes a few pixels wide to half the image"


def test_coco_area_ranges_keep_cocos_fractions_of_the_image():
    coco = 640 * 480
    ranges = coco_area_ranges(128)
    assert list(ranges) == ["small", "medium", "large"]
    assert ranges["small"] == (0.0, pytest.approx(32**2 / coco * 128**2))
    assert ranges["medium"] == (pytest.approx(54.613, abs=1e-3), pytest.approx(96**2 / coco * 128**2))
    assert ranges["large"] == (pytest.approx(491.52), math.inf)
    assert coco_area_ranges(640)["medium"][1] == pytest.approx(96**2 * 640 / 480)


def test_detection_scenes_reparametrise_shapes_scenes_without_forking_it():
    reference = ShapesScenes(6, 64, seed=3)
    same = DetectionScenes(6, 64, seed=3, min_objects=1, max_objects=4, size_range=reference.size_range)
    for i in range(6):
        (image_a, target_a), (image_b, target_b) = reference[i], same[i]
        assert torch.equal(image_a, image_b)
        assert all(torch.equal(target_a[key], target_b[key]) for key in target_a)


def test_splits_are_disjoint_and_reproducible():
    splits = {split: detection_scenes(split, 4, 64) for split in ("train", "val", "test")}
    assert [dataset.seed for dataset in splits.values()] == [0, 1, 2]
    assert [detection_scenes(split, 1, seed=2).seed for split in ("train", "val", "test")] == [6, 7, 8]
    for i in range(4):
        images = [dataset[i][0] for dataset in splits.values()]
        assert not torch.equal(images[0], images[1]) and not torch.equal(images[1], images[2])
        assert torch.equal(images[0], detection_scenes("train", 4, 64)[i][0])


@pytest.mark.parametrize("seed", [0, 1])
def test_augmented_boxes_labels_masks_and_class_map_stay_consistent(seed):
    torch.manual_seed(seed)
    dataset = DetectionScenes(20, seed=seed, transforms=detection_transforms(96))
    dropped = rescaled = 0
    for i in range(len(dataset)):
        image, target = dataset[i]
        assert_consistent(image, target, 96)
        original = dataset.scene(i)
        dropped += len(original.shapes) - len(target["labels"])
        rescaled += not math.isclose(target["masks"].sum() / original.masks.sum(), (96 / 128) ** 2, rel_tol=0.1)
    assert dropped > 0 and rescaled > 10, "crops and zooms must happen, or this test checks nothing"


def test_augmentation_moves_the_image_with_the_masks():
    """Each shape is one flat colour (colour jitter keeps it flat), so the pixels under a mask, away from its
    edge, are nearly uniform; mirrored, the same masks often straddle shapes and background and are not."""
    torch.manual_seed(0)
    dataset = DetectionScenes(15, seed=1, transforms=detection_transforms(128))
    spread, mirrored_spread = [], []
    for i in range(len(dataset)):
        image, target = dataset[i]
        inner = -F.max_pool2d(-target["masks"].float(), 5, stride=1, padding=2) > 0  # eroded by 2 px
        for mask in inner[inner.flatten(1).sum(dim=1) >= 30]:
            spread.append(image[:, mask].std(dim=1).max())
            mirrored_spread.append(image[:, mask.flip(-1)].std(dim=1).max())
    spread, mirrored_spread = torch.stack(spread), torch.stack(mirrored_spread)
    assert len(spread) >= 30 and spread.max() < 0.06, spread.max()
    assert (mirrored_spread > 0.06).float().mean() > 0.4, "the check must be able to see a misaligned mask"


def test_augmentation_is_deterministic_under_a_torch_seed():
    dataset = DetectionScenes(4, 64, seed=2)
    transforms = detection_transforms(64)

    def run(seed):
        torch.manual_seed(seed)
        return [transforms(*dataset[i]) for i in range(len(dataset))]

    first, again, other = run(7), run(7), run(8)
    for (image_a, target_a), (image_b, target_b) in zip(first, again):
        assert torch.equal(image_a, image_b)
        assert all(torch.equal(target_a[key], target_b[key]) for key in target_a)
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_zoom_out_and_crop_can_be_switched_off():
    """With zoom_out=1 and min_crop=1 only colours and the horizontal flip change: boxes stay or mirror."""
    dataset = DetectionScenes(10, 64, seed=4, transforms=detection_transforms(64, zoom_out=1, min_crop=1))
    torch.manual_seed(0)
    for i in range(len(dataset)):
        _, target = dataset[i]
        expected = masks_to_boxes(dataset.scene(i).masks) + PIXEL_EDGES
        mirrored = expected[:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([64, 0, 64, 0])
        assert torch.equal(plain(target["boxes"]), expected) or torch.equal(plain(target["boxes"]), mirrored)


def test_augmented_scenes_batch_with_collate_detection():
    torch.manual_seed(0)
    dataset = detection_scenes("train", 6, 64, transforms=detection_transforms(64))
    images, targets = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_detection)))
    assert images.shape == (3, 3, 64, 64) and len(targets) == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DetectionScenes(2, size_range=(4, 20)),
         (r"size_range must be \(smallest, largest\) shape widths in pixels with 6 <= smallest <= largest <= 64 "
          r"\(half of image_size=128\), got \(4, 20\)")),
        (lambda: DetectionScenes(2, 64, size_range=(10, 40)),
         r"largest <= 32 \(half of image_size=64\), got \(10, 40\)"),
        (lambda: DetectionScenes(2, 32), r"need min_objects <= max_objects <= 4 .* lower them or raise image_size"),
        (lambda: detection_scenes("valid", 2), r"split must be one of \('train', 'val', 'test'\), got 'valid'"),
        (lambda: detection_scenes("train", 2, seed=-1), r"seed must be an integer >= 0, got -1"),
        (lambda: coco_area_ranges(0), r"image_size must be an integer >= 1, got 0"),
        (lambda: detection_transforms(0), r"image_size must be an integer >= 1, got 0"),
        (lambda: detection_transforms(64, zoom_out=0.5), r"zoom_out .* must be in \[1, 4\], got 0.5; 1.5 is a good"),
        (lambda: detection_transforms(64, min_crop=0), r"min_crop .* must be in \(0, 1\], got 0; 0.5 is a good start"),
    ],
)
def test_bad_arguments_say_what_to_change(make, message):
    with pytest.raises(ValueError, match=message):
        make()
