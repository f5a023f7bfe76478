"""Real detection data: Penn-Fudan pedestrians and Pascal VOC, with the targets of the synthetic scenes.

Items are ``(image, target)``: a float ``tv_tensors.Image`` (3, H, W) in [0, 1] and a dict with
``boxes`` (``BoundingBoxes`` (N, 4), XYXY, float) and ``labels`` (int64 (N,), 0 = background), plus
``masks`` where the dataset has them. Boxes follow the course's pixel-edge convention: a box covering
pixels x1..x2 (0-based, inclusive) is ``(x1, y1, x2 + 1, y2 + 1)``, so v2 flips and resizes move it
exactly. A missing dataset raises ``DatasetNotFoundError`` saying where to get it and where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets import VOCDetection, wrap_dataset_for_transforms_v2
from torchvision.datasets.utils import download_and_extract_archive
from torchvision.datasets.voc import DATASET_YEAR_DICT
from torchvision.transforms import v2

from cvcourse.data.folders import DatasetNotFoundError, data_root, require_folder
from cvcourse.data.real import _open, _to_float
from cvcourse.data.synthetic import mask_boxes

PENN_FUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/"
PENN_FUDAN_ZIP = PENN_FUDAN_URL + "PennFudanPed.zip"
# Penn-Fudan has no official split: the images in file-name order, the last 30% for testing (51 of the 170; the
# torchvision tutorial holds out the last 50) and the 10% before them for tuning
PENN_FUDAN_SPLITS = {"train": (0.0, 0.6), "val": (0.6, 0.7), "test": (0.7, 1.0)}
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/"
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # label i is VOC_CLASSES[i], in the order torchvision's VOC wrapper numbers them
VOC_YEARS = tuple(sorted(key for key in DATASET_YEAR_DICT if key.isdigit()))  # "2007".."2012"
VOC_IMAGE_SETS = ("train", "val", "trainval")  # and "test" for 2007 only
VOC_BOX_TAGS = {"xmin", "ymin", "xmax", "ymax"}


def _read_instances(path: Path) -> np.ndarray:
    """A Penn-Fudan mask PNG as int64 (H, W): 0 = background, k = pedestrian number k."""
    with _open(path) as mask:
        if mask.mode not in ("L", "P", "I"):
            raise ValueError(f"{path} is a {mask.mode} image; a Penn-Fudan mask holds one instance id per pixel "
                             "(0 = background, 1..n = pedestrians): use the PedMasks/ files of PennFudanPed.zip as "
                             "they are, without converting them to colour")
        return np.array(mask, dtype=np.int64)


class PennFudan(Dataset):
    """The Penn-Fudan Database for Pedestrian Detection and Segmentation (Wang, Shi, Song & Shen, 2007).

    ``root`` (default ``data_root() / "PennFudanPed"``) holds ``PNGImages/FudanPed00001.png`` and
    ``PedMasks/FudanPed00001_mask.png`` (and ``PennPed*`` likewise), where mask value k marks pedestrian
    k and 0 the background, as in torchvision's object detection finetuning tutorial. ``dataset[i]`` is
    ``(image, target)``: ``image`` float (3, H, W) in [0, 1]; ``target`` has ``masks`` (``Mask`` (N, H, W)
    bool, one per pedestrian, in id order), ``boxes`` around them (``mask_boxes``: ``masks_to_boxes`` plus
    (0, 0, 1, 1), the pixel-edge convention) and ``labels`` all 1. ``transforms(image, target)`` last.
    ``download=True`` fetches PennFudanPed.zip (51 MB) when ``root`` does not exist yet.
    """

    class_names = ("background", "pedestrian")
    num_classes = len(class_names)

    def __init__(self, root: str | os.PathLike | None = None, transforms: Callable | None = None,
                 download: bool = False) -> None:
        root = Path(root).expanduser() if root is not None else data_root() / "PennFudanPed"
        if download and not root.is_dir():
            _download_penn_fudan(root)
        self.root = require_folder(
            root, dataset="Penn-Fudan pedestrians", expected=["PNGImages", "PedMasks"],
            how_to_get=f"download PennFudanPed.zip from the Penn-Fudan Database for Pedestrian Detection and "
            f"Segmentation page ({PENN_FUDAN_URL}) and unzip it into the folder's parent",
        )
        images = {path.stem: path for path in sorted((self.root / "PNGImages").glob("*.png"))}
        masks = {path.stem.removesuffix("_mask"): path for path in sorted((self.root / "PedMasks").glob("*_mask.png"))}
        if not images:
            raise ValueError(f"no PNG images in {self.root / 'PNGImages'}; unzip PennFudanPed.zip again, "
                             "it holds 170 of them")
        for missing, have, where in ((set(images) - set(masks), "image", "PedMasks/<name>_mask.png"),
                                     (set(masks) - set(images), "mask", "PNGImages/<name>.png")):
            if missing:
                names = ", ".join(sorted(missing)[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                raise ValueError(f"{len(missing)} Penn-Fudan {have}s have no partner {where} in {self.root}: {names}; "
                                 "every image needs its mask and every mask its image: unzip PennFudanPed.zip again")
        self.pairs = [(images[name], masks[name]) for name in images]
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
        image_path, mask_path = self.pairs[index]
        with _open(image_path) as picture:
            image = _to_float(v2.functional.to_image(picture.convert("RGB")))
        instances = torch.from_numpy(_read_instances(mask_path))
        if instances.shape != image.shape[-2:]:
            raise ValueError(f"{image_path} is {image.shape[-1]}x{image.shape[-2]} but its mask {mask_path} is "
                             f"{instances.shape[1]}x{instances.shape[0]}; a mask must have its image's size")
        ids = instances.unique()
        masks = instances[None] == ids[ids > 0][:, None, None]
        target = {
            "boxes": mask_boxes(masks),
            "labels": torch.ones(len(masks), dtype=torch.int64),
            "masks": tv_tensors.Mask(masks),
        }
        return self.transforms(image, target) if self.transforms else (image, target)


def _download_penn_fudan(root: Path) -> None:
    """PennFudanPed.zip unpacked into ``root``'s parent (the archive holds the folder ``PennFudanPed``)."""
    if root.name != "PennFudanPed":
        raise ValueError(f"download=True unpacks the folder PennFudanPed; root must end with it, got {root}")
    try:
        download_and_extract_archive(PENN_FUDAN_ZIP, download_root=str(root.parent), remove_finished=True)
    except OSError as error:
        raise DatasetNotFoundError(f"could not download Penn-Fudan pedestrians from {PENN_FUDAN_ZIP} ({error}); "
                                   f"download it by hand and unzip it into {root.parent}") from error


class PennFudanScenes(Dataset):
    """One split of Penn-Fudan as detection scenes: each image resized to ``image_size`` x ``image_size`` (the
    aspect ratio changes, the boxes follow), its target ``boxes`` and ``labels`` (no masks), like the synthetic
    scenes' items. Splits (``PENN_FUDAN_SPLITS``): train, val and test, disjoint, in file-name order; ``count``
    keeps at most that many of the split's first images."""

    class_names = PennFudan.class_names
    num_classes = PennFudan.num_classes

    def __init__(self, split: str, image_size: int, count: int | None = None, *,
                 root: str | os.PathLike | None = None, download: bool = False) -> None:
        if split not in PENN_FUDAN_SPLITS:
            raise ValueError(f"split must be one of {tuple(PENN_FUDAN_SPLITS)}, got {split!r}")
        self.dataset = PennFudan(root, download=download)
        start, end = (round(share * len(self.dataset)) for share in PENN_FUDAN_SPLITS[split])
        if start == end:
            raise ValueError(f"{self.dataset.root} holds {len(self.dataset)} images, too few for a {split} split; "
                             "unzip PennFudanPed.zip again, it holds 170")
        self.indices = list(range(start, end))[:count]
        self.resize = v2.Resize((image_size, image_size), antialias=True)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
        image, target = self.dataset[self.indices[index]]
        return self.resize(image, {"boxes": target["boxes"], "labels": target["labels"]})


class _VOCSample:
    """After torchvision's v2 wrapper: PIL image -> float Image, VOC boxes -> pixel edges, then ``transforms``.

    VOC numbers pixels from 1 (its devkit is MATLAB) and its box spans pixels xmin..xmax inclusive, so
    the pixel-edge box is (xmin - 1, ymin - 1, xmax, ymax); the wrapper gives (xmin, ymin, xmax, ymax).
    A class, not a closure, so that DataLoader workers can pickle it.
    """

    def __init__(self, transforms: Callable | None) -> None:
        self.transforms = transforms

    def __call__(self, image: Image.Image, target: dict) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
        image = _to_float(v2.functional.to_image(image))
        boxes = target["boxes"].as_subclass(torch.Tensor).float() - torch.tensor([1.0, 1.0, 0.0, 0.0])
        target = {**target, "boxes": tv_tensors.wrap(boxes, like=target["boxes"])}
        return self.transforms(image, target) if self.transforms else (image, target)


class _VOCBoxes(VOCDetection):
    """torchvision's Pascal VOC detection dataset, with the class names of its labels and one clear error for
    an annotation file torchvision's v2 wrapper could not read (bad XML, no object, unknown class, no box)."""

    class_names = VOC_CLASSES
    num_classes = len(class_names)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        path = self.annotations[index]
        try:
            image, target = super().__getitem__(index)
        except ParseError as error:
            raise ValueError(f"{path} is not valid XML ({error}); take it from the VOC archive again") from None
        objects = target.get("annotation", {}).get("object", [])
        incomplete = [item.get("name") for item in objects
                      if item.get("name") not in VOC_CLASSES[1:] or not VOC_BOX_TAGS <= set(item.get("bndbox") or ())]
        if not objects or incomplete:
            problem = f"objects named {incomplete} are incomplete or of no VOC class" if objects else "no <object>"
            raise ValueError(f"{path} is not a usable VOC annotation ({problem}): each <object> needs a <name> "
                             "from VOC_CLASSES[1:] and a <bndbox> holding <xmin>, <ymin>, <xmax>, <ymax>; "
                             "fix the file or take it from the VOC archive again")
        return image, target


def voc_detection(
    root: str | os.PathLike | None = None,
    year: str = "2012",
    image_set: str = "train",
    download: bool = False,
    transforms: Callable | None = None,
) -> Dataset:
    """Pascal VOC detection (Everingham et al. 2010): ``torchvision.datasets.VOCDetection`` wrapped by
    ``torchvision.datasets.wrap_dataset_for_transforms_v2``, so that targets are dicts of tensors.

    Items are ``(image, {"boxes", "labels"})``: ``image`` float (3, H, W) in [0, 1]; ``boxes``
    ``BoundingBoxes`` (N, 4) XYXY in pixel edges (see ``_VOCSample``); ``labels`` int64 (N,) indexing
    ``VOC_CLASSES`` (0 = background, never used by an object; "difficult" objects are included).
    The files live in ``root / "VOCdevkit" / "VOC<year>"``, ``root`` defaulting to ``data_root()``;
    ``download=True`` lets torchvision fetch the archive (2 GB for 2012). ``transforms(image, target)`` last.
    """
    year = str(year)
    if year not in VOC_YEARS:
        raise ValueError(f"year must be one of {VOC_YEARS}, got {year!r}; '2012' is the largest set with annotations")
    image_sets = VOC_IMAGE_SETS + (("test",) if year == "2007" else ())
    if image_set not in image_sets:
        raise ValueError(f"image_set must be one of {image_sets} for VOC {year}, got {image_set!r}"
                         f"{'; only VOC 2007 has a public test set' if image_set == 'test' else ''}")
    root = Path(root).expanduser() if root is not None else data_root()
    key = "2007-test" if image_set == "test" else year
    if not download:
        voc = require_folder(
            root / DATASET_YEAR_DICT[key]["base_dir"], dataset=f"Pascal VOC {year}",
            expected=["JPEGImages", "Annotations", f"ImageSets/Main/{image_set}.txt"],
            how_to_get=f"call voc_detection(download=True), or download {DATASET_YEAR_DICT[key]['filename']} "
            f"(see {VOC_URL}) and untar it into {root}",
        )
        names = (voc / "ImageSets" / "Main" / f"{image_set}.txt").read_text().split()
        missing = [f"{folder}/{name}{suffix}" for name in names
                   for folder, suffix in (("JPEGImages", ".jpg"), ("Annotations", ".xml"))
                   if not (voc / folder / f"{name}{suffix}").is_file()]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise ValueError(f"ImageSets/Main/{image_set}.txt in {voc} lists files that are missing: "
                             f"{', '.join(missing[:3])}{more}; untar the VOC archive again (or remove those names)")
    dataset = _VOCBoxes(root, year=year, image_set=image_set, download=download, transforms=_VOCSample(transforms))
    return wrap_dataset_for_transforms_v2(dataset)
