"""Tests of the real detection loaders on tiny files written in each dataset's own on-disk format."""

import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2
from torchvision.tv_tensors._dataset_wrapper import VOC_DETECTION_CATEGORIES

from cvcourse.data import VOC_CLASSES, DatasetNotFoundError, PennFudan, PennFudanScenes, voc_detection
from cvcourse.data import real_detection

from real_formats import (PEDESTRIAN_COLOURS, PEDESTRIANS, VOC_ANNOTATION, VOC_ITEMS, VOC_OBJECT,  # isort: skip
                          write_penn_fudan, write_voc)

PIXEL_EDGES = torch.tensor([0.0, 0.0, 1.0, 1.0])  # masks_to_boxes gives the last pixel, boxes its far edge


def plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.as_subclass(torch.Tensor)


def test_penn_fudan_items_have_one_mask_box_and_label_per_pedestrian(tmp_path):
    base = write_penn_fudan(tmp_path)
    assert Image.open(base / "PedMasks" / "FudanPed00001_mask.png").mode == "P"
    dataset = PennFudan(base)
    assert len(dataset) == 2 and dataset.class_names == ("background", "pedestrian") and dataset.num_classes == 2
    for (image, target), rectangles in zip(dataset, PEDESTRIANS.values()):
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, 30, 40) and image.dtype == torch.float32
        boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
        assert isinstance(masks, tv_tensors.Mask) and masks.dtype == torch.bool
        assert masks.shape == (len(rectangles), 30, 40)
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format == tv_tensors.BoundingBoxFormat.XYXY
        assert tuple(boxes.canvas_size) == (30, 40) and boxes.dtype == torch.float32
        assert labels.dtype == torch.int64 and labels.tolist() == [1] * len(rectangles)
        for k, (rows, columns) in enumerate(rectangles):
            assert boxes[k].tolist() == [columns.start, rows.start, columns.stop, rows.stop], "pixel-edge box"
            expected = torch.zeros(30, 40, dtype=torch.bool)
            expected[rows, columns] = True
            assert torch.equal(plain(masks[k]), expected)
            colour = torch.from_numpy(PEDESTRIAN_COLOURS[k]).float() / 255
            torch.testing.assert_close(image[:, masks[k]].mean(dim=1), colour)
        # torchvision's detection tutorial takes masks_to_boxes; the course adds one pixel to x2, y2.
        torch.testing.assert_close(plain(boxes), masks_to_boxes(masks) + PIXEL_EDGES)


def test_penn_fudan_default_root_and_transforms(tmp_path, monkeypatch):
    write_penn_fudan(tmp_path)
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    image, target = PennFudan(transforms=v2.RandomHorizontalFlip(p=1.0))[0]
    plain_image, plain_target = PennFudan()[0]
    assert torch.equal(plain(image), plain_image.flip(-1))
    assert torch.equal(plain(target["masks"]), plain_target["masks"].flip(-1))
    torch.testing.assert_close(plain(target["boxes"]), masks_to_boxes(target["masks"]) + PIXEL_EDGES)


def test_penn_fudan_missing_says_where_to_get_it_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"Dataset 'Penn-Fudan pedestrians' not found: the folder .*"
                       r"PennFudanPed does not exist\. How to get it: download PennFudanPed\.zip from the Penn-Fudan "
                       r"Database for Pedestrian Detection and Segmentation page \(https://") as error:
        PennFudan()
    assert f"Where to put it: {tmp_path / 'PennFudanPed'} so that it contains PNGImages, PedMasks" in str(error.value)


def test_penn_fudan_mask_without_image_and_image_without_mask(tmp_path):
    base = write_penn_fudan(tmp_path)
    (base / "PNGImages" / "PennPed00002.png").unlink()
    with pytest.raises(ValueError, match=r"1 Penn-Fudan masks have no partner PNGImages/<name>\.png in .*: "
                       r"PennPed00002; every image needs its mask"):
        PennFudan(base)
    (base / "PedMasks" / "PennPed00002_mask.png").unlink()
    (base / "PedMasks" / "FudanPed00001_mask.png").unlink()
    with pytest.raises(ValueError, match=r"1 Penn-Fudan images have no partner PedMasks/<name>_mask\.png in .*: "
                       r"FudanPed00001"):
        PennFudan(base)


def test_penn_fudan_empty_image_folder(tmp_path):
    (tmp_path / "PNGImages").mkdir()
    (tmp_path / "PedMasks").mkdir()
    with pytest.raises(ValueError, match=r"no PNG images in .*PNGImages; unzip PennFudanPed\.zip again"):
        PennFudan(tmp_path)


def test_penn_fudan_colour_mask_and_size_mismatch(tmp_path):
    base = write_penn_fudan(tmp_path)
    Image.new("RGB", (40, 30)).save(base / "PedMasks" / "FudanPed00001_mask.png")
    with pytest.raises(ValueError, match=r"FudanPed00001_mask\.png is a RGB image; a Penn-Fudan mask holds one "
                       r"instance id per pixel"):
        PennFudan(base)[0]
    Image.new("L", (41, 30)).save(base / "PedMasks" / "PennPed00002_mask.png")
    with pytest.raises(ValueError, match=r"PennPed00002\.png is 40x30 but its mask .*PennPed00002_mask\.png is 41x30"):
        PennFudan(base)[1]


def test_penn_fudan_scenes_are_disjoint_square_splits_with_boxes_that_follow(tmp_path):
    base = write_penn_fudan(tmp_path, count=20)
    splits = {split: PennFudanScenes(split, 64, root=base) for split in ("train", "val", "test")}
    assert {split: len(scenes) for split, scenes in splits.items()} == {"train": 12, "val": 2, "test": 6}
    assert sum((scenes.indices for scenes in splits.values()), []) == list(range(20))  # in file-name order
    assert len(PennFudanScenes("test", 64, 4, root=base)) == 4 and splits["test"].class_names == PennFudan.class_names
    image, target = splits["train"][0]
    assert image.shape == (3, 64, 64) and set(target) == {"boxes", "labels"}
    rows, columns = PEDESTRIANS["FudanPed00001"][0]  # 30 x 40 photos: heights scale by 64 / 30, widths by 64 / 40
    expected = torch.tensor([columns.start * 1.6, rows.start * 64 / 30, columns.stop * 1.6, rows.stop * 64 / 30])
    torch.testing.assert_close(plain(target["boxes"][0]), expected)
    assert tuple(target["boxes"].canvas_size) == (64, 64) and target["labels"].tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'val', 'test'\), got 'valid'"):
        PennFudanScenes("valid", 64, root=base)
    with pytest.raises(ValueError, match=r"holds 2 images, too few for a val split"):
        PennFudanScenes("val", 64, root=write_penn_fudan(tmp_path / "two"))


def test_penn_fudan_download_unpacks_the_archive_once_and_says_what_to_do_when_it_fails(tmp_path, monkeypatch):
    calls = []

    def unpack(url, download_root, remove_finished):
        calls.append(url)
        write_penn_fudan(Path(download_root))

    monkeypatch.setattr(real_detection, "download_and_extract_archive", unpack)
    assert len(PennFudan(tmp_path / "PennFudanPed", download=True)) == 2
    assert len(PennFudan(tmp_path / "PennFudanPed", download=True)) == 2 and calls == [real_detection.PENN_FUDAN_ZIP]

    def offline(url, download_root, remove_finished):
        raise OSError("no route to host")

    monkeypatch.setattr(real_detection, "download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError, match=r"could not download Penn-Fudan .*PennFudanPed\.zip \(no route to "
                       r"host\); download it by hand and unzip it into"):
        PennFudan(tmp_path / "elsewhere" / "PennFudanPed", download=True)
    with pytest.raises(ValueError, match="root must end with it"):
        PennFudan(tmp_path / "pedestrians", download=True)


# Pascal VOC: (name, image size (w, h), objects (class, xmin, ymin, xmax, ymax) in VOC's 1-based pixels).
def test_voc_classes_follow_torchvisions_label_numbers():
    assert VOC_CLASSES[0] == "background" and len(VOC_CLASSES) == 21
    assert VOC_CLASSES[1:] == tuple(VOC_DETECTION_CATEGORIES[1:])


def test_voc_items_have_pixel_edge_boxes_and_class_labels(tmp_path):
    write_voc(tmp_path)
    dataset = voc_detection(tmp_path)
    assert len(dataset) == 2 and dataset.class_names == VOC_CLASSES and dataset.num_classes == 21
    for (image, target), (_, (width, height), objects) in zip(dataset, VOC_ITEMS):
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, height, width)
        assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
        boxes, labels = target["boxes"], target["labels"]
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.dtype == torch.float32
        assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (height, width)
        assert labels.dtype == torch.int64 and [VOC_CLASSES[i] for i in labels] == [o[0] for o in objects]
        assert boxes.tolist() == [[x0 - 1, y0 - 1, x1, y1] for _, x0, y0, x1, y1 in objects]
        white = image.mean(dim=0) > 0.5  # the painted boxes, recovered from the JPEG
        painted = torch.zeros_like(white)
        for x1, y1, x2, y2 in boxes.int().tolist():
            painted[y1:y2, x1:x2] = True
        assert torch.equal(white, painted), "box corners are pixel edges of the image"


def test_voc_transforms_and_pickling(tmp_path):
    write_voc(tmp_path)
    dataset = voc_detection(tmp_path, transforms=v2.Resize((20, 24)))
    image, target = dataset[0]
    assert image.shape == (3, 20, 24) and tuple(target["boxes"].canvas_size) == (20, 24)
    assert target["boxes"].tolist() == [[2.0, 3.0, 10.0, 15.0]]  # (4, 6, 20, 30) scaled by 1/2 and 1/2
    clone = pickle.loads(pickle.dumps(dataset))  # as DataLoader workers receive it
    assert torch.equal(clone[0][0], image) and clone.class_names == VOC_CLASSES


def test_voc_missing_says_download_or_where(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"Dataset 'Pascal VOC 2012' not found: the folder .*VOC2012 does "
                       r"not exist\. How to get it: call voc_detection\(download=True\), or download "
                       r"VOCtrainval_11-May-2012\.tar") as error:
        voc_detection()
    expected = tmp_path / "VOCdevkit" / "VOC2012"
    assert f"Where to put it: {expected} so that it contains JPEGImages, Annotations, ImageSets/Main/train.txt" in str(
        error.value)


def test_voc_split_listing_missing_files(tmp_path):
    voc = write_voc(tmp_path)
    (voc / "JPEGImages" / "2008_000002.jpg").unlink()
    with pytest.raises(ValueError, match=r"ImageSets/Main/train\.txt in .* lists files that are missing: "
                       r"JPEGImages/2008_000002\.jpg; untar the VOC archive again"):
        voc_detection(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"lacks ImageSets/Main/val\.txt"):
        voc_detection(tmp_path, image_set="val")


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ("", r"is not a usable VOC annotation \(no <object>\): each <object> needs a <name> from VOC_CLASSES"),
        (VOC_OBJECT.format(name="unicorn", xmin=1, ymin=1, xmax=5, ymax=5),
         (r"\(objects named \['unicorn'\] are incomplete or of no VOC class\): each <object> needs a <name> from "
          r"VOC_CLASSES\[1:\] and a <bndbox>")),
        ("  <object><name>dog</name></object>\n",
         r"\(objects named \['dog'\] are incomplete .* <bndbox> holding <xmin>, <ymin>, <xmax>, <ymax>; fix the file"),
        ("  <object><name>dog</name>\n", r"is not valid XML \(mismatched tag"),
    ],
)
def test_voc_malformed_annotation_names_the_file(tmp_path, objects, message):
    voc = write_voc(tmp_path)
    (voc / "Annotations" / "2007_000027.xml").write_text(
        VOC_ANNOTATION.format(filename="2007_000027.jpg", width=48, height=40, objects=objects))
    dataset = voc_detection(tmp_path)
    with pytest.raises(ValueError, match=r"2007_000027\.xml .*" + message):
        dataset[0]
    assert len(dataset[1][1]["labels"]) == 2, "the other items still load"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"year": "2013"}, r"year must be one of \('2007', .*'2012'\), got '2013'"),
        ({"image_set": "test"},
         (r"image_set must be one of \('train', 'val', 'trainval'\) for VOC 2012, got 'test'; only VOC 2007 has a "
          r"public test set")),
        ({"image_set": "training"}, r"got 'training'$"),
    ],
)
def test_voc_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        voc_detection(tmp_path, **kwargs)
