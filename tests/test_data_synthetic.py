"""Tests of the synthetic shape datasets: types, ranges, geometry, determinism, balance, bad input."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from cvcourse.data import (
    SHAPE_CLASSES,
    ShapesScenes,
    SingleShapes,
    mask_boxes,
    render_shape,
    semantic_map,
)
from cvcourse.data.synthetic import MIN_VISIBLE_FRACTION, max_objects_for

PIXEL_EDGES = torch.tensor([0.0, 0.0, 1.0, 1.0])  # masks_to_boxes gives the last pixel, boxes its far edge


@pytest.fixture(scope="module")
def scenes():
    return ShapesScenes(40, 64, seed=3)


def test_scene_item_types_shapes_and_ranges(scenes):
    for i in range(len(scenes)):
        image, target = scenes[i]
        assert isinstance(image, tv_tensors.Image)
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        boxes, labels, masks, semantic = (target[k] for k in ("boxes", "labels", "masks", "semantic"))
        n = len(labels)
        assert 1 <= n <= 4
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.shape == (n, 4)
        assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (64, 64)
        assert labels.dtype == torch.int64 and labels.shape == (n,)
        assert 1 <= labels.min() and labels.max() <= len(SHAPE_CLASSES)
        assert isinstance(masks, tv_tensors.Mask) and masks.shape == (n, 64, 64) and masks.dtype == torch.bool
        assert isinstance(semantic, tv_tensors.Mask) and semantic.shape == (64, 64)
        assert semantic.dtype == torch.int64


def test_class_names_follow_the_detection_convention(scenes):
    assert scenes.class_names == ("background", "circle", "square", "triangle", "cross")
    assert scenes.num_classes == 5


def test_boxes_are_the_boxes_of_the_visible_masks(scenes):
    for i in range(len(scenes)):
        _, target = scenes[i]
        expected = masks_to_boxes(target["masks"]) + PIXEL_EDGES
        torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor), expected)


def test_semantic_map_is_the_instance_masks_painted_with_their_labels(scenes):
    for i in range(len(scenes)):
        _, target = scenes[i]
        masks, labels, semantic = target["masks"], target["labels"], target["semantic"]
        assert masks.sum(dim=0).max() <= 1, "visible parts of different objects must not overlap"
        painted = (masks * labels[:, None, None]).sum(dim=0)
        assert torch.equal(semantic.as_subclass(torch.Tensor), painted)


def test_every_object_keeps_half_of_its_area_visible(scenes):
    for i in range(len(scenes)):
        scene = scenes.scene(i)
        for shape, visible in zip(scene.shapes, scene.masks):
            full = shape.mask(64)
            assert not (visible & ~full).any(), "the visible part must lie inside the shape"
            assert visible.sum() >= MIN_VISIBLE_FRACTION * full.sum() > 0


def test_visible_pixels_have_the_colour_of_their_shape(scenes):
    for i in range(10):
        scene = scenes.scene(i)
        for shape, visible in zip(scene.shapes, scene.masks):
            pixels = scene.image[:, visible]
            colour = torch.tensor(shape.color)[:, None]
            assert (pixels - colour).abs().mean() < 0.03  # only the mild noise differs


def test_shapes_stand_out_from_the_background(scenes):
    for i in range(len(scenes)):
        scene = scenes.scene(i)
        background = scene.image[:, ~scene.masks.any(dim=0)].median(dim=1).values
        for shape in scene.shapes:
            assert (torch.tensor(shape.color) - background).norm() > 0.3  # RGB distance


def test_object_sizes_span_small_to_half_the_image(scenes):
    sizes = [shape.size / 64 for i in range(len(scenes)) for shape in scenes.scene(i).shapes]
    assert min(sizes) < 0.15 and max(sizes) > 0.4 and max(sizes) <= 0.5


def test_same_seed_gives_identical_items_in_any_order():
    first, second = ShapesScenes(10, seed=7), ShapesScenes(10, seed=7)
    later = second[6]  # random access: item 6 before items 0..5 must not change it
    for i in range(10):
        image_a, target_a = first[i]
        image_b, target_b = later if i == 6 else second[i]
        assert torch.equal(image_a, image_b)
        for key in target_a:
            assert torch.equal(target_a[key], target_b[key])


def test_different_seeds_give_different_items():
    for dataset_type in (ShapesScenes, SingleShapes):
        a, b = dataset_type(5, seed=0), dataset_type(5, seed=1)
        assert all(not torch.equal(a[i][0], b[i][0]) for i in range(5))


def test_scene_classes_are_balanced_over_500_items():
    dataset = ShapesScenes(500, 32, seed=11)
    counts = Counter(int(label) for i in range(len(dataset)) for label in dataset[i][1]["labels"])
    total = sum(counts.values())
    assert set(counts) == {1, 2, 3, 4}
    assert all(0.2 < counts[c] / total < 0.3 for c in counts), counts


def test_colour_does_not_reveal_the_class():
    """scikit-learn's logistic regression on the shapes' RGB colours stays at chance (25%)."""
    dataset = ShapesScenes(300, 32, seed=5)
    shapes = [shape for i in range(len(dataset)) for shape in dataset.scene(i).shapes]
    colours = np.array([shape.color for shape in shapes])
    kinds = np.array([shape.label for shape in shapes])
    accuracy = cross_val_score(LogisticRegression(max_iter=1000), colours, kinds, cv=5).mean()
    assert accuracy < 0.32


def test_min_and_max_objects_are_respected_on_the_smallest_images():
    dataset = ShapesScenes(60, 16, seed=2, min_objects=2, max_objects=max_objects_for(16))
    assert all(len(dataset[i][1]["labels"]) == 2 for i in range(len(dataset)))


def test_render_shape_areas_match_geometry():
    """Pixel counts approach the exact areas (as a fraction of size**2) on a fine enough grid."""
    size = 160.0
    expected = {"circle": math.pi / 4, "square": 1.0, "triangle": math.sqrt(3) / 4, "cross": 5 / 9}
    for kind, fraction in expected.items():
        for angle in (0.0, 30.0, 75.0):
            mask = render_shape(kind, (128.0, 128.0), size, angle, 256)
            assert mask.shape == (256, 256) and mask.dtype == torch.bool
            assert mask.sum().item() == pytest.approx(fraction * size**2, rel=0.015), (kind, angle)


def test_render_shape_places_an_unrotated_square_exactly():
    mask = render_shape("square", (32.0, 20.0), 10.0, 0.0, 64)
    assert mask_boxes(mask[None]).tolist() == [[27.0, 15.0, 37.0, 25.0]]
    assert mask.sum() == 100


def test_render_shape_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown shape kind 'star'; choose one of"):
        render_shape("star", (8.0, 8.0), 6.0, 0.0, 16)


def test_mask_boxes_matches_torchvision_and_keeps_empty_masks_degenerate():
    masks = torch.zeros(3, 20, 30, dtype=torch.bool)
    masks[0, 2:5, 7:9] = True
    masks[2, 10:20, 0:30] = True
    boxes = mask_boxes(masks)
    assert tuple(boxes.canvas_size) == (20, 30)
    assert boxes.tolist() == [[7.0, 2.0, 9.0, 5.0], [0.0, 0.0, 0.0, 0.0], [0.0, 10.0, 30.0, 20.0]]
    torch.testing.assert_close(boxes[[0, 2]].as_subclass(torch.Tensor), masks_to_boxes(masks[[0, 2]]) + PIXEL_EDGES)


def test_semantic_map_paints_later_masks_over_earlier_ones():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2] = True
    masks[1, 1:3] = True
    semantic = semantic_map(masks, torch.tensor([3, 1]))
    assert semantic.tolist() == [[3] * 4, [1] * 4, [1] * 4, [0] * 4]


def test_single_shapes_items():
    dataset = SingleShapes(50, 32, seed=4)
    assert dataset.class_names == SHAPE_CLASSES and dataset.num_classes == 4
    for i in range(len(dataset)):
        image, label = dataset[i]
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, 32, 32)
        assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
        assert isinstance(label, int) and 0 <= label < 4
        assert image.std() > 0.05  # a shape on a background, not a flat image


def test_single_shapes_classes_are_balanced_over_500_items():
    dataset = SingleShapes(500, 16, seed=9)
    counts = Counter(dataset[i][1] for i in range(len(dataset)))
    assert set(counts) == {0, 1, 2, 3}
    assert all(90 <= n <= 160 for n in counts.values()), counts


def test_transforms_are_applied_last():
    plain, flipped = SingleShapes(3, seed=1), SingleShapes(3, seed=1, transforms=v2.RandomHorizontalFlip(p=1))
    image, label = flipped[2]
    assert torch.equal(image, torch.flip(plain[2][0], dims=[-1])) and label == plain[2][1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, r"size must be an integer >= 1, got 0"),
        ({"size": 2.5}, r"size must be an integer >= 1, got 2.5"),
        ({"image_size": 8}, r"image_size must be an integer >= 16, got 8"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"min_objects": 0}, r"min_objects must be an integer >= 1, got 0"),
        ({"min_objects": 3, "max_objects": 2}, r"min_objects <= max_objects <= 8 .* lower them or raise image_size"),
        ({"image_size": 16, "max_objects": 3}, r"max_objects <= 2 \(the most shapes a 16x16 image holds"),
    ],
)
def test_scenes_reject_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapesScenes(**kwargs)


def test_single_shapes_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"image_size must be an integer >= 16, got 10"):
        SingleShapes(image_size=10)


@pytest.mark.parametrize("index", [10, -1])
def test_index_out_of_range_names_the_valid_range(index):
    for dataset in (ShapesScenes(10), SingleShapes(10)):
        with pytest.raises(IndexError, match=rf"index {index} is out of range .* valid indices are 0..9"):
            dataset[index]
