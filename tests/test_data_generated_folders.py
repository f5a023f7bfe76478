"""Tests of the loader of real and generated images on tiny folders written in each layout it recognises."""

import dataclasses

import pytest
import torch

from cvcourse.data import DatasetNotFoundError, GeneratedImageSplit, generated_image_folder, shortcuts
from cvcourse.data.generated_folders import LAYOUTS

from real_formats import GENERATED_LAYOUTS, write_generated_folder  # isort: skip

JPEG_ONLY, PNG_ONLY = ((".jpg", (32, 32)),) * 3, ((".png", (32, 32)),) * 2


def test_the_layouts_are_the_datasets_own_folder_names():
    assert LAYOUTS == GENERATED_LAYOUTS and list(LAYOUTS) == ["CIFAKE", "GenImage", "generic"]


@pytest.mark.parametrize("layout, split", [("CIFAKE", "train"), ("CIFAKE", "test"), ("GenImage", "train"),
                                           ("GenImage", "val"), ("generic", "train")])
def test_each_layout_loads_real_images_first_with_label_zero(tmp_path, layout, split):
    write_generated_folder(tmp_path, layout, split)
    data = generated_image_folder(tmp_path, split, image_size=16)
    assert isinstance(data, GeneratedImageSplit) and len(data) == 5 and data.layout == layout
    assert type(data.images) is torch.Tensor and data.images.shape == (5, 3, 16, 16)
    assert data.images.dtype == torch.float32 and 0 <= data.images.min() and data.images.max() <= 1
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == [0, 0, 0, 1, 1]
    real, generated = GENERATED_LAYOUTS[layout]
    assert [(path.parent.name, path.name) for path in data.paths] == [
        (real, "000.jpg"), (real, "001.jpg"), (real, "002.jpg"), (generated, "000.png"), (generated, "001.png")]
    brightness = data.images.mean((1, 2, 3))
    assert brightness[:3].max() < 0.3 and brightness[3:].min() > 0.7  # dark real, light generated images
    torch.testing.assert_close(data.images[3, :, 0, 0], torch.tensor([200, 210, 200]) / 255)  # PNG is lossless
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.layout = "CIFAKE"


def test_formats_and_sizes_are_counted_per_class(tmp_path):
    write_generated_folder(tmp_path, real=((".JPEG", (40, 30)), (".jpg", (40, 30)), (".png", (30, 40))),
                           generated=((".PNG", (32, 32)), (".webp", (32, 32)), (".bmp", (64, 64))))
    (tmp_path / "train" / "real" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "generated" / "prompts").mkdir()
    data = generated_image_folder(tmp_path)
    assert data.formats == {"real": {".jpeg": 1, ".jpg": 1, ".png": 1}, "generated": {".bmp": 1, ".png": 1, ".webp": 1}}
    assert data.sizes == {"real": {"30x40": 1, "40x30": 2}, "generated": {"32x32": 2, "64x64": 1}}
    assert len(data) == 6 and [path.name for path in data.paths][:3] == ["000.JPEG", "001.jpg", "002.png"]


def test_shortcuts_report_a_format_difference_and_a_size_difference(tmp_path):
    data = generated_image_folder(write_generated_folder(tmp_path))  # real 40x30 .jpg, generated 32x32 .png
    assert shortcuts(data) == [
        "real images are 100% JPEG, generated 100% PNG: a detector can learn JPEG compression instead of generation; "
        "re-encode both sides the same way (see the chapter's format section)",
        "real images are 100% 40x30, generated 100% 32x32 (width x height): a detector can learn the original size "
        "(and the traces resizing leaves) instead of generation; crop both sides to one size before resizing, or "
        "keep only the sizes both classes share"]


def test_shortcuts_are_empty_when_the_classes_match(tmp_path):
    mixed = ((".jpg", (32, 32)), (".jpeg", (48, 32)), (".png", (32, 32)), (".PNG", (48, 32)))
    assert shortcuts(generated_image_folder(write_generated_folder(tmp_path, real=mixed, generated=mixed))) == []


def test_shortcuts_name_the_file_format_when_jpeg_is_not_the_difference(tmp_path):
    write_generated_folder(tmp_path, real=((".png", (32, 32)),) * 2, generated=((".webp", (32, 32)),) * 2)
    assert shortcuts(generated_image_folder(tmp_path)) == [
        "real images are 100% PNG, generated 100% WebP: a detector can learn the file format instead of generation; "
        "re-encode both sides the same way (see the chapter's format section)"]


def test_small_differences_are_not_shortcuts_but_many_sizes_are_summarised(tmp_path):
    real = [(".png", (32 + k, 32)) for k in range(10)] + [(".png", (32, 32))] * 10
    generated = [(".png", (32 + k, 32)) for k in range(10)] + [(".png", (32, 32))] * 9 + [(".jpg", (32, 32))]
    data = generated_image_folder(write_generated_folder(tmp_path, real=real, generated=generated), image_size=8)
    assert shortcuts(data) == []  # 1 JPEG in 20: a total variation of 0.05, at most 52.5% accuracy from the format
    write_generated_folder(tmp_path, split="test", real=real, generated=[(".png", (64, 64))] * 4)
    assert shortcuts(generated_image_folder(tmp_path, "test", image_size=8))[0].startswith(
        "real images are 55% 32x32, 5% 33x32, 5% 34x32 and 7 more, generated 100% 64x64 (width x height)")


def test_one_channel_is_grey(tmp_path):
    data = generated_image_folder(write_generated_folder(tmp_path, real=JPEG_ONLY, generated=PNG_ONLY), channels=1)
    assert data.images.shape == (5, 1, 32, 32) and data.labels.tolist() == [0, 0, 0, 1, 1]
    # PIL's L = (299 R + 587 G + 114 B) / 1000, so the green offset adds 6 levels
    torch.testing.assert_close(data.images[3, 0, 0, 0], torch.tensor(206 / 255))


def test_two_loads_are_equal(tmp_path):
    write_generated_folder(tmp_path, "GenImage", "val")
    first, second = generated_image_folder(tmp_path, "val"), generated_image_folder(tmp_path, "val")
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert first.paths == second.paths and first.formats == second.formats and first.sizes == second.sizes


def test_the_first_layout_found_wins(tmp_path):
    write_generated_folder(tmp_path, "GenImage")
    write_generated_folder(tmp_path, "generic", generated=PNG_ONLY * 2)
    data = generated_image_folder(tmp_path)
    assert data.layout == "GenImage" and len(data) == 5


def test_missing_root_says_where_to_get_the_data_and_which_layouts_are_read(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"Dataset 'real and generated images' not found: the folder "
                       r".*cifake does not exist\. How to get it: download CIFAKE from https://www\.kaggle\.com/"
                       r"datasets/birdy654/cifake-real-and-ai-generated-synthetic-images .* GenImage from "
                       r"https://github\.com/GenImage-Dataset/GenImage .*REAL/ and FAKE/ \(CIFAKE\), nature/ and ai/ "
                       r"\(GenImage\), real/ and generated/ \(generic\)\. Where to put it: .*cifake so that it "
                       r"contains train\."):
        generated_image_folder(tmp_path / "cifake")


def test_missing_split_is_named(tmp_path):
    write_generated_folder(tmp_path, "CIFAKE", "train")
    with pytest.raises(DatasetNotFoundError, match=r"Dataset 'real and generated images' not found: .* exists but "
                       r"lacks val\. How to get it: download CIFAKE"):
        generated_image_folder(tmp_path, "val")


@pytest.mark.parametrize("layout, real, generated, missing", [
    ("CIFAKE", JPEG_ONLY, (), r"no generated images: .*train/FAKE does not exist \(CIFAKE layout"),
    ("GenImage", (), PNG_ONLY, r"no real images: .*train/nature does not exist \(GenImage layout"),
])
def test_a_split_with_one_class_says_a_detector_needs_both(tmp_path, layout, real, generated, missing):
    write_generated_folder(tmp_path, layout, real=real, generated=generated)
    with pytest.raises(ValueError, match=r"the 'train' split has " + missing + r".*\)\. A detector needs both real and "
                       r"generated images: put the (real|generated) images there"):
        generated_image_folder(tmp_path)


def test_a_class_folder_without_images(tmp_path):
    write_generated_folder(tmp_path, generated=())
    (tmp_path / "train" / "generated").mkdir()
    (tmp_path / "train" / "generated" / "prompts.txt").write_text("a photo of a cat")
    with pytest.raises(ValueError, match=r"the 'train' split has no generated images: .*train/generated holds no image "
                       r"files \(generic layout, image files end in \.png, \.jpg, \.jpeg, \.bmp, \.webp\)\. A detector "
                       r"needs both real and generated images: put the generated images there"):
        generated_image_folder(tmp_path)


def test_a_split_in_no_known_layout(tmp_path):
    (tmp_path / "train" / "Real").mkdir(parents=True)
    (tmp_path / "train" / "Fake").mkdir()
    with pytest.raises(ValueError, match=r"train holds none of the class folders of the layouts this loader knows, "
                       r"REAL/ and FAKE/ \(CIFAKE\), .*; it holds Fake/, Real/\. Rename its two class folders after "
                       r"one of these layouts"):
        generated_image_folder(tmp_path)


def test_bad_image_size_and_channels(tmp_path):
    with pytest.raises(ValueError, match=r"image_size must be an integer >= 8 \(the side of the square output\), "
                       r"got 4"):
        generated_image_folder(tmp_path, image_size=4)
    with pytest.raises(ValueError, match=r"channels must be 1 \(grey\) or 3 \(RGB\), got 4"):
        generated_image_folder(tmp_path, channels=4)
    with pytest.raises(ValueError, match=r"channels must be 1 \(grey\) or 3 \(RGB\), got True"):
        generated_image_folder(tmp_path, channels=True)
