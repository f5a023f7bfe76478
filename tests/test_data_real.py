"""Tests of the real-dataset loaders on tiny files written in each dataset's own on-disk format."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvcourse.data import DatasetNotFoundError, ISBIStack, MaskFolder, oxford_pet

from real_formats import write_mask_folder, write_pet_dataset, write_stack  # isort: skip


def plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(torch.Tensor)


def test_oxford_pet_items_are_resized_aligned_and_mapped(tmp_path):
    write_pet_dataset(tmp_path)
    dataset = oxford_pet(tmp_path, image_size=24)
    assert len(dataset) == 3 and len(oxford_pet(tmp_path, split="test", image_size=24)) == 2
    assert dataset.class_names == ("pet", "background", "border") and dataset.num_classes == 3
    bands = torch.arange(3).repeat_interleave(8)  # 16-pixel bands of the 48-pixel width become 8 of 24
    for image, mask in dataset:
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, 24, 24) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        assert isinstance(mask, tv_tensors.Mask) and mask.shape == (24, 24) and mask.dtype == torch.int64
        assert torch.equal(plain(mask), bands.expand(24, 24)), "trimap v -> v - 1, nearest neighbours only"
        brightest_channel = image.argmax(dim=0)
        assert torch.equal(brightest_channel[:, 1:-1], mask[:, 1:-1]), "pet red, background green, border blue"


def test_oxford_pet_mask_resize_makes_no_new_values(tmp_path):
    write_pet_dataset(tmp_path)
    for image_size in (17, 31, 100):  # sizes that do not divide the band width
        _, mask = oxford_pet(tmp_path, image_size=image_size)[0]
        assert set(mask.unique().tolist()) == {0, 1, 2}


def test_oxford_pet_missing_says_download_or_where(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"Dataset 'Oxford-IIIT Pet' not found: the folder .*oxford-iiit-pet "
                       r"does not exist\. How to get it: call oxford_pet\(download=True\)") as error:
        oxford_pet()
    assert f"Where to put it: {tmp_path / 'oxford-iiit-pet'} so that it contains images" in str(error.value)


def test_oxford_pet_missing_split_file_is_named(tmp_path):
    (write_pet_dataset(tmp_path) / "annotations" / "test.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"exists but lacks annotations/test\.txt"):
        oxford_pet(tmp_path, split="test")


@pytest.mark.parametrize("kwargs, match", [({"split": "train"}, r"split must be 'trainval' or 'test'"),
                                           ({"image_size": (64, 64)}, r"image_size must be an integer >= 8")])
def test_oxford_pet_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        oxford_pet(tmp_path, **kwargs)


@pytest.fixture
def isbi(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 256, (3, 12, 16), dtype=np.uint8)
    labels = np.where(rng.random((3, 12, 16)) < 0.7, 255, 0).astype(np.uint8)
    folder = tmp_path / "isbi2012"
    folder.mkdir()
    write_stack(folder / "train-volume.tif", volume)
    write_stack(folder / "train-labels.tif", labels)
    return folder, volume, labels


def test_isbi_pages_become_images_and_cell_masks(isbi):
    folder, volume, labels = isbi
    dataset = ISBIStack(folder / "train-volume.tif", folder / "train-labels.tif")
    assert len(dataset) == 3 and dataset.class_names == ("membrane", "cell")
    for page in range(3):
        image, mask = dataset[page]
        assert isinstance(image, tv_tensors.Image) and image.shape == (1, 12, 16) and image.dtype == torch.float32
        torch.testing.assert_close(plain(image)[0], torch.from_numpy(volume[page]).float() / 255)
        assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
        assert torch.equal(plain(mask), torch.from_numpy(labels[page] == 255).long())


def test_isbi_without_labels_gives_images_and_transforms_apply(isbi):
    folder, _, _ = isbi
    unlabelled = ISBIStack(folder / "train-volume.tif")
    assert isinstance(unlabelled[1], tv_tensors.Image) and unlabelled[1].shape == (1, 12, 16)
    flipped = ISBIStack(folder / "train-volume.tif", folder / "train-labels.tif",
                        transforms=v2.RandomHorizontalFlip(p=1.0))
    reference = ISBIStack(folder / "train-volume.tif", folder / "train-labels.tif")
    (image, mask), (original, original_mask) = flipped[0], reference[0]
    assert torch.equal(plain(image), original.flip(-1)) and torch.equal(plain(mask), original_mask.flip(-1))


def test_isbi_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"'ISBI 2012 EM segmentation' not found: .* lacks "
                       r"train-volume\.tif\. How to get it: download train-volume\.tif and train-labels\.tif "
                       r"from https://"):
        ISBIStack(tmp_path / "train-volume.tif")


def test_isbi_page_count_mismatch(isbi):
    folder, _, labels = isbi
    write_stack(folder / "short-labels.tif", labels[:2])
    with pytest.raises(ValueError, match=r"train-volume\.tif holds 3 pages of 16x12 but .*short-labels\.tif holds 2 "
                       r"pages of 16x12; pass the labels that belong to this volume"):
        ISBIStack(folder / "train-volume.tif", folder / "short-labels.tif")


def test_isbi_labels_must_be_0_and_255(isbi):
    folder, _, _ = isbi
    with pytest.raises(ValueError, match=r"train-volume\.tif holds the values \[0, 1, 2, .*ISBI labels are "
                       r"0 \(membrane\) and 255 \(cell\) only"):
        ISBIStack(folder / "train-volume.tif", folder / "train-volume.tif")


def test_isbi_pages_must_be_8_bit_grey_and_of_one_size(tmp_path):
    rgb = [np.zeros((8, 8, 3), dtype=np.uint8)] * 2
    write_stack(tmp_path / "rgb.tif", rgb)
    with pytest.raises(ValueError, match=r"page 0 of .*rgb\.tif has mode 'RGB'; ISBI stacks are 8-bit grayscale"):
        ISBIStack(tmp_path / "rgb.tif")
    write_stack(tmp_path / "mixed.tif", [np.zeros((8, 8), np.uint8), np.zeros((8, 10), np.uint8)])
    with pytest.raises(ValueError, match=r"page 1 of .*mixed\.tif is 10x8 but page 0 is 8x8"):
        ISBIStack(tmp_path / "mixed.tif")


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    (tmp_path / "train-volume.tif").write_text("not a tiff")
    with pytest.raises(ValueError, match=r"train-volume\.tif is not an image file PIL can read"):
        ISBIStack(tmp_path / "train-volume.tif")


def test_mask_folder_pairs_images_and_masks_by_stem(tmp_path):
    masks = write_mask_folder(tmp_path / "mine")
    (tmp_path / "mine" / "images" / "notes.txt").write_text("not an image")
    dataset = MaskFolder(tmp_path / "mine")
    assert len(dataset) == 3 and dataset.num_classes == 3
    for (image, mask), stem in zip(dataset, ("a", "b", "c")):
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, 8, 10) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
        assert torch.equal(plain(mask), torch.from_numpy(masks[stem]).long())


def test_mask_folder_custom_names_num_classes_and_transforms(tmp_path):
    write_mask_folder(tmp_path)
    (tmp_path / "images").rename(tmp_path / "photos")
    (tmp_path / "masks").rename(tmp_path / "labels")
    dataset = MaskFolder(tmp_path, "photos", "labels", num_classes=5, transforms=v2.Resize((4, 5)))
    image, mask = dataset[0]
    assert dataset.num_classes == 5 and image.shape == (3, 4, 5) and mask.shape == (4, 5)


def test_mask_folder_missing_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"Dataset 'your mask folder' not found: the folder .* does not "
                       r"exist\. How to get it: put your images in images/ and one mask per image"):
        MaskFolder(tmp_path / "nothing")


def test_mask_folder_images_without_masks_are_listed(tmp_path):
    write_mask_folder(tmp_path, stems=[f"img{n}" for n in range(8)])
    for n in (1, 2, 3, 4, 5, 7):
        (tmp_path / "masks" / f"img{n}.png").unlink()
    with pytest.raises(ValueError, match=r"6 images have no mask in .*masks: img1, img2, img3, img4, img5 and 1 more; "
                       r"a mask must have its image's file name stem"):
        MaskFolder(tmp_path)


def test_mask_folder_without_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match=r"no images \(\.png, \.jpg, .*\) in .*images; put your images in images/"):
        MaskFolder(tmp_path)


def test_mask_folder_size_mismatch(tmp_path):
    write_mask_folder(tmp_path)
    Image.fromarray(np.zeros((8, 9), dtype=np.uint8)).save(tmp_path / "masks" / "b.png")
    with pytest.raises(ValueError, match=r"b\.jpg is 10x8 but its mask .*b\.png is 9x8; "
                                         r"a mask must have its image's size"):
        MaskFolder(tmp_path)


def test_mask_folder_labels_beyond_num_classes(tmp_path):
    write_mask_folder(tmp_path)
    with pytest.raises(ValueError, match=r"a\.png holds class id 2 but num_classes=2 allows 0\.\.1; raise num_classes"):
        MaskFolder(tmp_path, num_classes=2)


def test_mask_folder_rejects_colour_masks(tmp_path):
    write_mask_folder(tmp_path)
    Image.new("RGB", (10, 8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(ValueError, match=r"mask .*a\.png is a RGB image; a mask holds one class id per pixel"):
        MaskFolder(tmp_path)
