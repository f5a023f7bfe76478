"""The synthetic inspection set: deterministic, normal-only training, masks where the defects are, and defects that
no per-image brightness statistic finds."""

import numpy as np
import pytest
import torch

from cvcourse.data import AnomalySplit, inspection_split
from cvcourse.data import inspection
from cvcourse.data.inspection import CATEGORIES, DEFECTS, KINDS
from cvcourse.metrics import auroc


@pytest.mark.parametrize("category", CATEGORIES)
def test_splits_have_the_promised_shapes_ranges_and_composition(category):
    train = inspection_split(category, "train", 10, image_size=32)
    test = inspection_split(category, "test", 25, image_size=32)
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == torch.float32
    assert 0 <= train.images.min() and train.images.max() <= 1
    assert set(train.defects) == {"good"} and not train.masks.any() and not train.labels.any()
    assert test.masks.shape == (25, 1, 32, 32) and test.masks.dtype == torch.bool
    assert test.defects.count("good") == 10 and all(test.defects.count(defect) == 5 for defect in DEFECTS)
    assert torch.equal(test.labels, torch.tensor([name != "good" for name in test.defects]).long())
    defective = test.labels == 1
    assert test.masks[defective].flatten(1).any(1).all(), "every defective image has a non-empty mask"
    assert not test.masks[~defective].any()
    coverage = test.masks[defective].float().mean()
    assert 0.005 < coverage < 0.08, "defects are small: a few percent of the image"


def test_images_are_deterministic_per_seed_and_differ_between_seeds_and_splits():
    a = inspection_split("carpet", "test", 5, seed=0)
    b = inspection_split("carpet", "test", 5, seed=0)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, inspection_split("carpet", "test", 5, seed=1).images)
    assert not torch.equal(a.images[:2], inspection_split("carpet", "train", 2, seed=0).images)
    assert torch.equal(inspection_split("carpet", "test", 8).images[:5], a.images), "image i depends on i alone"


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("defect", DEFECTS)
def test_a_defect_changes_the_image_inside_its_mask_and_nowhere_else(category, defect):
    image, material = inspection.NORMAL[category](np.random.default_rng(7), 32)
    changed = image.copy()
    weight = inspection.DEFECT_FUNCTIONS[defect](np.random.default_rng(8), changed, material,
                                                 inspection.STAIN_COLOURS[category])
    difference = np.abs(changed - image).max(axis=0)
    assert difference[weight == 0].max() == 0
    assert difference[weight > inspection.MASK_LEVEL].mean() > 0.05, "the defect is visible where its mask is"
    assert not (weight > 0)[~material].any(), "defects lie on the material"


@pytest.mark.parametrize("category", CATEGORIES)
def test_no_global_brightness_statistic_finds_the_defects(category):
    test = inspection_split(category, "test", 200, image_size=32, seed=0)
    for name, statistic in [("mean", test.images.mean((1, 2, 3))), ("max", test.images.amax((1, 2, 3))),
                            ("min", test.images.amin((1, 2, 3)))]:
        area = auroc(statistic, test.labels)
        assert max(area, 1 - area) < 0.70, f"{category}: the per-image {name} separates defects ({area:.3f})"


def test_the_stain_keeps_the_brightness_but_changes_the_colour():
    test = inspection_split("stripes", "test", 50).of("stain")
    normal = inspection_split("stripes", "test", 50).of("good")
    inside = test.images.permute(1, 0, 2, 3)[:, test.masks[:, 0]]
    assert abs(inside.mean() - normal.images.mean()) < 0.1
    assert inside[2].mean() > normal.images[:, 2].mean() + 0.1, "the stain turns the orange fabric blue"


def test_of_selects_one_defect_kind_and_kinds_cover_the_three_families():
    test = inspection_split("washer", "test", 10)
    holes = test.of("hole")
    assert isinstance(holes, AnomalySplit) and set(holes.defects) == {"hole"} and len(holes) == 2
    assert set(KINDS.values()) == {"regular texture", "stochastic texture", "object"}
    with pytest.raises(ValueError, match="no 'dent' images"):
        test.of("dent")


@pytest.mark.parametrize("kwargs, message", [
    (dict(category="tile", split="test", count=3), "unknown category 'tile'.*mvtec_ad"),
    (dict(category="carpet", split="val", count=3), "unknown split 'val'"),
    (dict(category="carpet", split="test", count=0), "count must be at least 1"),
    (dict(category="carpet", split="test", count=3, image_size=8), "image_size must be at least 16"),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inspection_split(**kwargs)


def test_a_split_checks_that_its_parts_line_up():
    with pytest.raises(ValueError, match="one entry per image"):
        AnomalySplit(torch.zeros(3, 3, 4, 4), None, torch.zeros(2, dtype=torch.long), ("good",) * 3, "x")
    assert np.isclose(len(AnomalySplit(torch.zeros(3, 3, 4, 4), None, torch.zeros(3), ("good",) * 3, "x")), 3)
