"""Tests of StreetScenes: types, class coverage, scene layout, colour not enough, flips, bad input."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.ensemble import RandomForestClassifier
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvcourse.data import STREET_CLASSES, StreetScenes
from cvcourse.data.streets import LANE, PEDESTRIAN, ROAD, SKY

REQUIRED = ("sky", "building", "road", "sidewalk", "lane marking", "car", "pedestrian")


def plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(torch.Tensor)


@pytest.fixture(scope="module")
def scenes():
    dataset = StreetScenes(50, seed=5)
    return [(plain(image), plain(mask)) for image, mask in (dataset[i] for i in range(len(dataset)))]


def test_class_names_start_with_sky_and_hold_the_street_classes():
    assert StreetScenes.class_names == STREET_CLASSES and STREET_CLASSES[0] == "sky"
    assert set(REQUIRED) <= set(STREET_CLASSES)
    assert StreetScenes.num_classes == len(STREET_CLASSES)


@pytest.mark.parametrize("image_size", [(64, 128), (48, 96)])
def test_item_types_shapes_and_ranges(image_size):
    dataset = StreetScenes(5, image_size, seed=1)
    for i in range(len(dataset)):
        image, mask = dataset[i]
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, *image_size)
        assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
        assert isinstance(mask, tv_tensors.Mask) and mask.shape == image_size and mask.dtype == torch.int64
        assert 0 <= mask.min() and mask.max() < len(STREET_CLASSES)


def test_every_class_appears_in_most_scenes(scenes):
    present = np.mean([np.bincount(mask.flatten(), minlength=len(STREET_CLASSES)) > 0 for _, mask in scenes], axis=0)
    assert (present >= 0.9).all(), dict(zip(STREET_CLASSES, present))


def test_rare_classes_keep_tens_of_pixels(scenes):
    for label in (PEDESTRIAN, LANE):
        pixels = np.array([(mask == label).sum().item() for _, mask in scenes])
        assert np.median(pixels) >= 40 and np.percentile(pixels, 10) >= 20, (STREET_CLASSES[label], pixels)


def test_pedestrians_are_figures_not_lines(scenes):
    """Each pedestrian's pixels span at least 16 rows; most are at least 4 columns wide."""
    sizes = []
    for _, mask in scenes:
        components, _ = ndimage.label((mask == PEDESTRIAN).numpy(), structure=np.ones((3, 3)))
        sizes += [(rows.stop - rows.start, columns.stop - columns.start)
                  for rows, columns in ndimage.find_objects(components)]
    heights, widths = np.array(sizes).T
    assert heights.min() >= 16 and np.median(widths) >= 6 and np.mean(widths >= 4) > 0.9


def test_sky_lies_above_the_road(scenes):
    for _, mask in scenes:
        sky_rows, road_rows = torch.where(mask == SKY)[0], torch.where(mask == ROAD)[0]
        assert sky_rows.max() < road_rows.min()


def test_road_widens_towards_the_camera(scenes):
    """Perspective: in the lowest rows (below the cars) the road, with its markings, gets wider row by row."""
    for _, mask in scenes:
        on_road = ((mask == ROAD) | (mask == LANE)).sum(dim=1)[-8:]
        assert (on_road[1:] >= on_road[:-1]).float().mean() >= 0.7 and on_road[-1] > on_road[0]


def test_colour_alone_does_not_tell_the_class(scenes):
    """A random forest (scikit-learn) on single pixels' RGB gets many pixels wrong."""
    colours = torch.cat([image.flatten(1).T for image, _ in scenes]).numpy()
    labels = torch.cat([mask.flatten() for _, mask in scenes]).numpy()
    pick = np.random.default_rng(0).permutation(len(labels))[:12000]
    train, test = pick[:8000], pick[8000:]
    forest = RandomForestClassifier(30, random_state=0).fit(colours[train], labels[train])
    assert forest.score(colours[test], labels[test]) < 0.85


def test_same_seed_gives_identical_items_in_any_order():
    first, second = StreetScenes(6, seed=3), StreetScenes(6, seed=3)
    later = second[5]
    for i in range(6):
        image_b, mask_b = later if i == 5 else second[i]
        assert torch.equal(first[i][0], image_b) and torch.equal(first[i][1], mask_b)
    other = StreetScenes(6, seed=4)
    assert all(not torch.equal(first[i][1], other[i][1]) for i in range(6))


def test_flip_keeps_image_and_mask_aligned():
    flipped = StreetScenes(4, seed=2, transforms=v2.RandomHorizontalFlip(p=1.0))
    reference = StreetScenes(4, seed=2)
    for i in range(4):
        (image, mask), (original, original_mask) = flipped[i], reference[i]
        assert isinstance(image, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
        assert torch.equal(plain(image), original.flip(-1)) and torch.equal(plain(mask), original_mask.flip(-1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 64}, r"image_size must be \(height, width\), two integers >= 32, got 64"),
        ({"image_size": (16, 128)}, r"two integers >= 32, got \(16, 128\); street scenes are wide"),
        ({"image_size": (64.0, 128)}, r"two integers >= 32"),
        ({"size": 0}, r"size must be an integer >= 1, got 0"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StreetScenes(**kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError, match=r"index -1 is out of range for StreetScenes of size 2; "
                                         r"valid indices are 0\.\.1"):
        StreetScenes(2)[-1]
