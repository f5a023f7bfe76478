"""Real segmentation data: Oxford-IIIT Pet trimaps, the ISBI 2012 EM stacks, and a folder of your own.

Every dataset here gives ``(image, mask)`` pairs like the synthetic ones: a float ``tv_tensors.Image``
(C, H, W) in [0, 1] and a ``tv_tensors.Mask`` (H, W) int64 of class ids, so the same training code runs
on both. A missing dataset raises ``DatasetNotFoundError`` saying where to get it and where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets import OxfordIIITPet
from torchvision.transforms import v2

from cvcourse.data.folders import data_root, require_folder

PET_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
ISBI_URL = "https://imagej.net/events/isbi-2012-segmentation-challenge"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_to_float = v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)


def _open(path: Path) -> Image.Image:
    """``PIL.Image.open`` with an error that names the file when it is not an image."""
    try:
        return Image.open(path)
    except UnidentifiedImageError as error:
        raise ValueError(f"{path} is not an image file PIL can read ({error}); "
                         "remove it or convert it to PNG") from None


class _PetSample:
    """Oxford-IIIT Pet (image, trimap) -> (Image float (3, s, s), Mask int64 (s, s)) with trimap v -> v - 1.

    ``v2.Resize`` resizes the image bilinearly and, because the trimap is a ``tv_tensors.Mask``, the mask
    with nearest neighbours, so no new values appear between classes. A class, not a closure, so that
    DataLoader workers can pickle it.
    """

    def __init__(self, image_size: int) -> None:
        self.resize = v2.Resize((image_size, image_size), antialias=True)

    def __call__(self, image: Image.Image, trimap: Image.Image) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        mask = tv_tensors.Mask(torch.from_numpy(np.array(trimap, dtype=np.int64)) - 1)
        return _to_float(*self.resize(v2.functional.to_image(image), mask))


class _PetTrimaps(OxfordIIITPet):
    """torchvision's Oxford-IIIT Pet, segmentation targets, with the trimap's class names."""

    class_names = ("pet", "background", "border")  # the trimap's 1, 2, 3 minus one
    num_classes = len(class_names)


def oxford_pet(
    root: str | os.PathLike | None = None, split: str = "trainval", image_size: int = 128, download: bool = False
) -> Dataset:
    """Oxford-IIIT Pet (Parkhi et al. 2012) for segmentation, via ``torchvision.datasets.OxfordIIITPet``.

    Items are ``(image, mask)``: ``image`` float (3, image_size, image_size) in [0, 1], resized
    bilinearly; ``mask`` int64 (image_size, image_size), resized with nearest neighbours, 0 = pet,
    1 = background, 2 = border (the trimap's 1, 2, 3 minus one; see ``class_names``). The files live in
    ``root / "oxford-iiit-pet"``, ``root`` defaulting to ``data_root()``; ``download=True`` fetches them.
    """
    if split not in ("trainval", "test"):
        raise ValueError(f"split must be 'trainval' or 'test' (the dataset's own two splits), got {split!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8 (the side of the square output), got {image_size!r}")
    root = Path(root).expanduser() if root is not None else data_root()
    if not download:
        require_folder(
            root / "oxford-iiit-pet",
            dataset="Oxford-IIIT Pet",
            expected=["images", "annotations/trimaps", f"annotations/{split}.txt"],
            how_to_get=f"call oxford_pet(download=True) (as on Colab; about 800 MB), or download images.tar.gz and "
            f"annotations.tar.gz from {PET_URL} and unpack both into the folder below",
        )
    return _PetTrimaps(root, split=split, target_types="segmentation", transforms=_PetSample(image_size),
                       download=download)


def _read_stack(path: str | os.PathLike) -> np.ndarray:
    """The pages of a multi-page 8-bit grayscale TIFF as uint8 (pages, H, W)."""
    path = Path(path).expanduser()
    require_folder(path.parent, dataset="ISBI 2012 EM segmentation", expected=[path.name],
                   how_to_get=f"download train-volume.tif and train-labels.tif from {ISBI_URL}")
    pages = []
    with _open(path) as stack:
        for number, page in enumerate(ImageSequence.Iterator(stack)):
            if page.mode != "L":
                raise ValueError(f"page {number} of {path} has mode {page.mode!r}; ISBI stacks are 8-bit grayscale "
                                 "('L'): convert the stack, e.g. in Fiji with Image > Type > 8-bit")
            if pages and page.size != (pages[0].shape[1], pages[0].shape[0]):
                raise ValueError(f"page {number} of {path} is {page.size[0]}x{page.size[1]} but page 0 is "
                                 f"{pages[0].shape[1]}x{pages[0].shape[0]}; every page of a stack must have one size")
            pages.append(np.array(page))
    return np.stack(pages)


class ISBIStack(Dataset):
    """The ISBI 2012 EM segmentation challenge stacks (Arganda-Carreras et al. 2015), one item per page.

    ``image_path`` is a multi-page 8-bit TIFF (``train-volume.tif``: 30 pages of 512x512); ``label_path``
    the matching labels (``train-labels.tif``), where 255 is cell interior and 0 membrane. Items are
    ``(image, mask)`` with ``image`` float (1, H, W) in [0, 1] and ``mask`` int64 (H, W), 1 = cell,
    0 = membrane; without labels (the test volume) an item is the image alone. ``transforms`` is
    applied last, as ``transforms(image, mask)`` or ``transforms(image)``.
    """

    class_names = ("membrane", "cell")
    num_classes = len(class_names)

    def __init__(
        self,
        image_path: str | os.PathLike,
        label_path: str | os.PathLike | None = None,
        *,
        transforms: Callable | None = None,
    ) -> None:
        self.images = _read_stack(image_path)
        self.labels = None if label_path is None else _read_stack(label_path)
        self.transforms = transforms
        if self.labels is None:
            return
        if self.labels.shape != self.images.shape:
            (n, h, w), (m, lh, lw) = self.images.shape, self.labels.shape
            raise ValueError(f"{image_path} holds {n} pages of {w}x{h} but {label_path} holds {m} pages of {lw}x{lh}; "
                             "pass the labels that belong to this volume (train-volume.tif with train-labels.tif)")
        values = np.unique(self.labels)
        if not set(values.tolist()) <= {0, 255}:
            raise ValueError(f"{label_path} holds the values {values[:10].tolist()}; ISBI labels are 0 (membrane) and "
                             "255 (cell) only: check that this is the label stack, not the image volume")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask] | tv_tensors.Image:
        image = tv_tensors.Image(torch.from_numpy(self.images[index])[None].float() / 255)
        if self.labels is None:
            return self.transforms(image) if self.transforms else image
        mask = tv_tensors.Mask(torch.from_numpy(self.labels[index] == 255).long())
        return self.transforms(image, mask) if self.transforms else (image, mask)


def _read_mask(path: Path) -> np.ndarray:
    """A single-channel mask image as int64 (H, W) class ids."""
    with _open(path) as mask:
        if mask.mode not in ("1", "L", "P", "I", "I;16"):
            raise ValueError(f"mask {path} is a {mask.mode} image; a mask holds one class id per pixel: save it as a "
                             "single-channel PNG (grayscale 'L' or palette 'P') whose values are the class ids")
        return np.array(mask, dtype=np.int64)


def _files_by_stem(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES}


class MaskFolder(Dataset):
    """Your own segmentation data: ``root/images/*`` and ``root/masks/*`` matched by file name stem.

    Images may be PNG, JPEG or TIFF (read as RGB); each mask is a single-channel PNG (or TIFF) of the
    same size holding a class id per pixel (``images/cat_1.jpg`` <-> ``masks/cat_1.png``). Every mask is
    read once here to check it; ``num_classes`` defaults to the largest id found plus one. Items are
    ``(image, mask)``: float (3, H, W) in [0, 1] and int64 (H, W); ``transforms(image, mask)`` last.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        images: str = "images",
        masks: str = "masks",
        num_classes: int | None = None,
        *,
        transforms: Callable | None = None,
    ) -> None:
        layout = f"put your images in {images}/ and one mask per image, with the same file name, in {masks}/"
        root = require_folder(root, dataset="your mask folder", expected=[images, masks], how_to_get=layout)
        image_files, mask_files = _files_by_stem(root / images), _files_by_stem(root / masks)
        if not image_files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root / images}; {layout}")
        unmatched = sorted(set(image_files) - set(mask_files))
        if unmatched:
            more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
            raise ValueError(f"{len(unmatched)} images have no mask in {root / masks}: "
                             f"{', '.join(unmatched[:5])}{more}; a mask must have its image's file name stem "
                             "(images/a.jpg <-> masks/a.png)")
        self.pairs = [(image_files[stem], mask_files[stem]) for stem in sorted(image_files)]
        largest = 0
        for image_path, mask_path in self.pairs:
            mask = _read_mask(mask_path)
            with _open(image_path) as image:
                if image.size != (mask.shape[1], mask.shape[0]):
                    raise ValueError(f"{image_path} is {image.size[0]}x{image.size[1]} but its mask {mask_path} is "
                                     f"{mask.shape[1]}x{mask.shape[0]}; a mask must have its image's size")
            if num_classes is not None and mask.max() >= num_classes:
                raise ValueError(f"{mask_path} holds class id {mask.max()} but num_classes={num_classes} allows "
                                 f"0..{num_classes - 1}; raise num_classes or fix the mask (255 often marks "
                                 "'ignore' in VOC-style masks)")
            largest = max(largest, int(mask.max()))
        self.num_classes = num_classes if num_classes is not None else largest + 1
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        image_path, mask_path = self.pairs[index]
        with _open(image_path) as image:
            image = _to_float(v2.functional.to_image(image.convert("RGB")))
        mask = tv_tensors.Mask(torch.from_numpy(_read_mask(mask_path)))
        return self.transforms(image, mask) if self.transforms else (image, mask)
