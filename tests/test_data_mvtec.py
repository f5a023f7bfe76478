"""Tests of the MVTec AD loader on tiny categories written in the dataset's own on-disk format."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from cvcourse.data import MVTEC_CATEGORIES, AnomalySplit, DatasetNotFoundError, mvtec_ad

from real_formats import MVTEC_SQUARE as SQUARE, write_mvtec  # isort: skip

def test_the_fifteen_categories():
    assert len(MVTEC_CATEGORIES) == 15 and len(set(MVTEC_CATEGORIES)) == 15
    assert {"bottle", "metal_nut", "zipper", "grid", "screw"} <= set(MVTEC_CATEGORIES)


def test_train_split_is_normal_images_only(tmp_path):
    split = mvtec_ad("bottle", "train", image_size=10, root=write_mvtec(tmp_path))
    assert isinstance(split, AnomalySplit) and len(split) == 3 and split.category == "bottle"
    assert type(split.images) is torch.Tensor and split.images.shape == (3, 3, 10, 10)
    assert split.images.dtype == torch.float32 and 0 <= split.images.min() and split.images.max() <= 1
    assert split.masks.shape == (3, 1, 10, 10) and split.masks.dtype == torch.bool and not split.masks.any()
    assert split.labels.dtype == torch.int64 and split.labels.tolist() == [0, 0, 0]
    assert split.defects == ("good", "good", "good")
    torch.testing.assert_close(split.images[0, :, 0, 0], torch.tensor([40, 50, 40]) / 255)
    with pytest.raises(dataclasses.FrozenInstanceError):
        split.category = "cable"


def test_test_split_has_every_defect_in_sorted_order_with_aligned_masks(tmp_path):
    split = mvtec_ad("bottle", "test", image_size=10, root=write_mvtec(tmp_path))
    assert split.defects == ("broken_large", "broken_large", "contamination", "good")
    assert split.labels.tolist() == [1, 1, 1, 0]
    assert split.images.shape == (4, 3, 10, 10) and split.masks.shape == (4, 1, 10, 10)
    square = torch.zeros(10, 10, dtype=torch.bool)
    square[2:6, 4:8] = True
    for image, mask, label in zip(split.images, split.masks, split.labels):
        assert torch.equal(mask[0], square if label else torch.zeros_like(square))
        if label:  # the white square comes back where its mask is
            assert image.mean(0)[square].min() > 0.7 and image.mean(0)[~square].max() < 0.5


def test_grayscale_categories_become_rgb(tmp_path):
    split = mvtec_ad("grid", "test", image_size=16, root=write_mvtec(tmp_path))
    assert split.images.shape == (3, 3, 16, 16) and split.defects == ("bent", "good", "good")
    assert torch.equal(split.images[:, 0], split.images[:, 1]) and torch.equal(split.images[:, 1], split.images[:, 2])
    assert split.masks[0].any() and not split.masks[1:].any()


def test_any_nonzero_mask_value_is_a_defect(tmp_path):
    write_mvtec(tmp_path)
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[SQUARE] = 1
    Image.fromarray(mask).save(tmp_path / "grid" / "ground_truth" / "bent" / "000_mask.png")
    split = mvtec_ad("grid", "test", image_size=20, root=tmp_path)
    assert split.masks[0, 0][SQUARE].all() and split.masks[0].sum() == 64


def test_default_root_is_data_root_mvtec_ad(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    write_mvtec(tmp_path / "mvtec_ad")
    assert len(mvtec_ad("grid", "train")) == 2 and mvtec_ad("grid", "train").images.shape[-1] == 64


def test_missing_dataset_says_where_to_get_it_and_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"Dataset 'MVTec AD' not found: the folder .*mvtec_ad does not "
                       r"exist\. How to get it: download MVTec AD from "
                       r"https://www\.mvtec\.com/company/research/datasets/mvtec-ad") as error:
        mvtec_ad("bottle", "train")
    assert f"Where to put it: {tmp_path / 'mvtec_ad'} so that it contains bottle/train/good" in str(error.value)


def test_missing_category_is_named(tmp_path):
    write_mvtec(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"Dataset 'MVTec AD' not found: .* exists but lacks cable/test\. "
                       r"How to get it: download MVTec AD from https://www\.mvtec\.com/.* Where to put it: "):
        mvtec_ad("cable", "test", root=tmp_path)


def test_unknown_split_and_bad_size(tmp_path):
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test' \(MVTec AD's two splits\), got 'val'"):
        mvtec_ad("bottle", "val", root=tmp_path)
    with pytest.raises(ValueError, match=r"image_size must be an integer >= 8"):
        mvtec_ad("bottle", "train", image_size=(64, 64), root=tmp_path)


def test_missing_mask_names_the_expected_file(tmp_path):
    write_mvtec(tmp_path)
    expected = tmp_path / "bottle" / "ground_truth" / "contamination" / "000_mask.png"
    expected.unlink()
    with pytest.raises(FileNotFoundError, match=r"test/contamination/000\.png has no mask: expected .*ground_truth/"
                       r"contamination/000_mask\.png\. MVTec AD keeps the mask of") as error:
        mvtec_ad("bottle", "test", root=tmp_path)
    assert str(expected) in str(error.value) and not isinstance(error.value, DatasetNotFoundError)


def test_mask_of_another_size(tmp_path):
    write_mvtec(tmp_path)
    Image.new("L", (20, 18)).save(tmp_path / "grid" / "ground_truth" / "bent" / "000_mask.png")
    with pytest.raises(ValueError, match=r"bent/000\.png is 20x20 but its mask .*000_mask\.png is 20x18"):
        mvtec_ad("grid", "test", root=tmp_path)


def test_category_without_training_images(tmp_path):
    write_mvtec(tmp_path)
    for path in (tmp_path / "bottle" / "train" / "good").iterdir():
        path.unlink()
    (tmp_path / "bottle" / "train" / "good" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"no \.png images in .*bottle/train/good; MVTec AD keeps a category's "
                       r"defect-free training images in train/good/"):
        mvtec_ad("bottle", "train", root=tmp_path)
