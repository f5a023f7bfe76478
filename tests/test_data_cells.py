"""Tests of SyntheticCells: types, gaps between touching cells, the three difficulty knobs, bad input."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.filters import threshold_otsu
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvcourse.data import SyntheticCells
from cvcourse.data.cells import BACKGROUND, touching_gaps

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(torch.Tensor)


def arrays(item):
    image, target = item
    return image[0].numpy(), target["mask"].numpy(), target["instances"].numpy()


def other_cell_nearby(instances: np.ndarray) -> np.ndarray:
    """Independent of the implementation: True where one of the 8 neighbours is a different cell."""
    padded = np.pad(instances, 1)
    height, width = instances.shape
    found = np.zeros(instances.shape, dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            neighbour = padded[dy:dy + height, dx:dx + width]
            found |= (neighbour > 0) & (neighbour != instances)
    return found & (instances > 0)


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    return 2 * (prediction & truth).sum() / (prediction.sum() + truth.sum())


@pytest.fixture(scope="module")
def cells():
    return SyntheticCells(30, 64, seed=3)


def test_item_types_shapes_and_ranges(cells):
    assert cells.class_names == ("background", "cell") and cells.num_classes == 2
    for i in range(len(cells)):
        image, target = cells[i]
        assert isinstance(image, tv_tensors.Image) and image.shape == (1, 64, 64) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        mask, instances = target["mask"], target["instances"]
        assert isinstance(mask, tv_tensors.Mask) and mask.shape == (64, 64) and mask.dtype == torch.int64
        assert isinstance(instances, tv_tensors.Mask) and instances.shape == (64, 64)
        assert instances.dtype == torch.int64
        assert set(mask.unique().tolist()) == {0, 1}
        ids = instances.unique().tolist()
        assert ids == list(range(len(ids))) and len(ids) >= 4, "ids 0..n without holes, several cells"


def test_mask_is_the_cells_minus_a_thin_gap_where_they_touch(cells):
    for i in range(len(cells)):
        _, mask, instances = arrays(cells[i])
        removed = (instances > 0) & (mask == 0)
        assert not (mask.astype(bool) & (instances == 0)).any(), "the mask lies inside the cells"
        assert np.array_equal(removed, other_cell_nearby(instances)), "exactly the pixels next to another cell"
        assert np.array_equal(removed, touching_gaps(instances))


def test_touching_gaps_of_two_squares_side_by_side_are_two_pixels_wide():
    instances = np.zeros((6, 9), dtype=np.int64)
    instances[1:5, 1:4], instances[1:5, 4:8] = 1, 2
    expected = np.zeros((6, 9), dtype=bool)
    expected[1:5, 3:5] = True
    assert np.array_equal(touching_gaps(instances), expected)


def test_no_two_cells_of_the_mask_touch_so_components_count_cells(cells):
    counted = cells_in_clusters = 0
    for i in range(len(cells)):
        _, mask, instances = arrays(cells[i])
        assert not other_cell_nearby(instances * mask).any()
        components, count = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
        for component in range(1, count + 1):
            assert len(np.unique(instances[components == component])) == 1, "a component is one cell"
        counted += len(np.unique(instances[mask > 0])) == instances.max()
        merged, _ = ndimage.label(instances > 0, structure=EIGHT_NEIGHBOURS)
        cells_in_clusters += instances.max() - merged.max()
    assert counted >= 0.9 * len(cells), "the gaps rarely swallow a whole cell"
    assert cells_in_clusters >= 2 * len(cells), "many cells touch: without gaps, components merge them"


def test_a_global_threshold_fails_by_construction():
    """Under uneven light, the brightest background pixel outshines the dimmest cell pixel."""
    def outshone(image, instances):
        return image[instances == 0].max() > image[instances > 0].min()

    shaded = SyntheticCells(30, 64, seed=3, noise=0)
    assert sum(outshone(image, instances) for image, _, instances in map(arrays, shaded)) >= 0.8 * len(shaded)
    flat = SyntheticCells(30, 64, seed=3, noise=0, illumination=0)
    assert not any(outshone(image, instances) for image, _, instances in map(arrays, flat))


def test_otsu_fails_on_the_default_images_and_works_on_clean_ones():
    """scikit-image's global Otsu threshold: clearly below 0.8 Dice by default, above 0.9 without light and noise."""
    scores = {}
    for name, knobs in {"default": {}, "clean": {"illumination": 0, "noise": 0}}.items():
        dataset = SyntheticCells(40, 64, seed=1234, **knobs)
        scores[name] = np.mean([dice(image > threshold_otsu(image), mask == 1)
                                for image, mask, _ in map(arrays, dataset)])
    assert scores["default"] < 0.78 and scores["clean"] > 0.9, scores


def test_illumination_zero_gives_a_flat_field():
    flat = SyntheticCells(5, 64, seed=4, illumination=0, noise=0)
    shaded = SyntheticCells(5, 64, seed=4, noise=0)
    for i in range(5):
        image, _, instances = arrays(flat[i])
        np.testing.assert_allclose(image[instances == 0], BACKGROUND, rtol=1e-6)
        image, _, instances = arrays(shaded[i])
        background = image[instances == 0]
        assert background.max() > 2.5 * background.min(), "one side at least 2.5x brighter"


def test_noise_strength_scales_the_noise_and_changes_nothing_else():
    clean, default, double = (SyntheticCells(5, 64, seed=6, noise=noise) for noise in (0, 1, 2))
    for i in range(5):
        image0, mask0, ids0 = arrays(clean[i])
        image1, mask1, ids1 = arrays(default[i])
        image2 = arrays(double[i])[0]
        assert np.array_equal(mask0, mask1) and np.array_equal(ids0, ids1)
        inside = (image2 > 0) & (image2 < 1)  # not clipped
        spread1, spread2 = (image1 - image0)[inside].std(), (image2 - image0)[inside].std()
        assert 0.02 < spread1 < 0.1
        assert 1.8 < spread2 / spread1 < 2.2


def test_touching_zero_keeps_every_cell_apart():
    apart = SyntheticCells(20, 64, seed=8, touching=0)
    for i in range(len(apart)):
        _, mask, instances = arrays(apart[i])
        assert np.array_equal(mask, (instances > 0).astype(np.int64)), "no gaps needed"
        _, count = ndimage.label(instances > 0, structure=EIGHT_NEIGHBOURS)
        assert count == instances.max()


def test_same_seed_gives_identical_items_in_any_order():
    first, second = SyntheticCells(6, 64, seed=7), SyntheticCells(6, 64, seed=7)
    later = second[4]
    for i in range(6):
        image_a, target_a = first[i]
        image_b, target_b = later if i == 4 else second[i]
        assert torch.equal(image_a, image_b)
        assert all(torch.equal(target_a[key], target_b[key]) for key in ("mask", "instances"))
    other = SyntheticCells(6, 64, seed=8)
    assert all(not torch.equal(first[i][0], other[i][0]) for i in range(6))


def test_flip_keeps_image_mask_and_instances_aligned():
    dataset = SyntheticCells(4, 96, seed=2, transforms=v2.RandomHorizontalFlip(p=1.0))
    reference = SyntheticCells(4, 96, seed=2)
    for i in range(4):
        (image, target), (original, original_target) = dataset[i], reference[i]
        assert isinstance(image, tv_tensors.Image) and isinstance(target["mask"], tv_tensors.Mask)
        assert torch.equal(plain(image), original.flip(-1))
        for key in ("mask", "instances"):
            assert torch.equal(plain(target[key]), original_target[key].flip(-1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 0}, r"size must be an integer >= 1"),
        ({"image_size": 24}, r"image_size must be at least 32 pixels"),
        ({"illumination": -0.5}, r"illumination must be a number >= 0 \(0 switches it off, 1 is the .*got -0\.5"),
        ({"noise": "high"}, r"noise must be a number >= 0"),
        ({"touching": True}, r"touching must be a number >= 0"),
        ({"touching": float("inf")}, r"touching must be a number >= 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticCells(**kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError, match=r"index 3 is out of range for SyntheticCells of size 3; "
                                         r"valid indices are 0\.\.2"):
        SyntheticCells(3)[3]
