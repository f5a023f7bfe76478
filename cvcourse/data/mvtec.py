"""MVTec AD (Bergmann et al., CVPR 2019): industrial photographs for unsupervised anomaly detection.

Each of the 15 categories trains on defect-free images only and tests on normal and defective ones, with a
binary mask of every defect. On disk: ``<category>/train/good/*.png``, ``<category>/test/<defect>/*.png``
(the defect ``good`` holds the normal test images) and ``<category>/ground_truth/<defect>/<stem>_mask.png``
(0 = normal, 255 = defect; none for ``good``). ``mvtec_ad`` reads one category's split into tensors at once:
a split holds a few hundred images, which fit in memory at the small sizes the course trains on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from cvcourse.data.folders import data_root, require_folder
from cvcourse.data.inspection import AnomalySplit
from cvcourse.data.real import _open

MVTEC_URL = "https://www.mvtec.com/company/research/datasets/mvtec-ad"
MVTEC_CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill",
                    "screw", "tile", "toothbrush", "transistor", "wood", "zipper")
NORMAL = "good"  # the defect name of normal images, in train/ and in test/
SPLITS = ("train", "test")


def _read_image(path: Path, image_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """An image as float RGB (3, S, S) in [0, 1], resized bilinearly with antialiasing, and its (width, height)."""
    with _open(path) as picture:
        size = picture.size
        image = TF.to_dtype(TF.to_image(picture.convert("RGB")), torch.float32, scale=True)
    return TF.resize(image, [image_size, image_size], antialias=True).clamp_(0, 1), size


def _read_mask(path: Path, image_path: Path, size: tuple[int, int], image_size: int) -> torch.Tensor:
    """The mask of a defective test image as bool (1, S, S), resized with nearest neighbours."""
    if not path.is_file():
        raise FileNotFoundError(f"the defective test image {image_path} has no mask: expected {path}. MVTec AD keeps "
                                "the mask of test/<defect>/<stem>.png in ground_truth/<defect>/<stem>_mask.png; "
                                f"unpack the category again from {MVTEC_URL}")
    with _open(path) as picture:
        if picture.size != size:
            raise ValueError(f"{image_path} is {size[0]}x{size[1]} but its mask {path} is "
                             f"{picture.size[0]}x{picture.size[1]}; a mask must have its image's size")
        mask = torch.from_numpy(np.array(picture.convert("L")) > 0)[None]
    return TF.resize(mask.to(torch.uint8), [image_size, image_size], interpolation=InterpolationMode.NEAREST).bool()


def _image_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() == ".png")


def mvtec_ad(category: str, split: str, image_size: int = 64, root: str | Path | None = None) -> AnomalySplit:
    """One category of MVTec AD (Bergmann et al., CVPR 2019) as an :class:`AnomalySplit`.

    ``split="train"`` gives the defect-free training images (``train/good``), ``"test"`` every folder of
    ``test/`` in sorted order, normal (``good``) and defective images with their masks. Images are resized
    bilinearly with antialiasing to ``image_size`` x ``image_size``, masks with nearest neighbours. The data
    lives in ``root``, by default ``data_root() / "mvtec_ad"``, one folder per category (``MVTEC_CATEGORIES``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test' (MVTec AD's two splits), got {split!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8 (the side of the square output), got {image_size!r}")
    root = Path(root).expanduser() if root is not None else data_root() / "mvtec_ad"
    require_folder(
        root,
        dataset="MVTec AD",
        expected=[f"{category}/train/{NORMAL}" if split == "train" else f"{category}/test"],
        how_to_get=f"download MVTec AD from {MVTEC_URL} (free for non-commercial use after registering; all 15 "
        f"categories are about 5 GB, each category is also offered alone) and unpack it into the folder below, "
        f"one folder per category ({', '.join(MVTEC_CATEGORIES)})",
    )
    base = root / category / split
    defects = [NORMAL] if split == "train" else sorted(path.name for path in base.iterdir() if path.is_dir())
    files = [(defect, path) for defect in defects for path in _image_files(base / defect)]
    if not files:
        where = base / NORMAL if split == "train" else base / "<defect>"
        raise ValueError(f"no .png images in {where}; MVTec AD keeps a category's defect-free training images in "
                         f"train/{NORMAL}/ and its test images in test/<defect>/: unpack the category again from "
                         f"{MVTEC_URL}")
    images, masks = [], []
    for defect, path in files:
        image, size = _read_image(path, image_size)
        if defect == NORMAL:
            mask = torch.zeros(1, image_size, image_size, dtype=torch.bool)
        else:
            mask_path = root / category / "ground_truth" / defect / f"{path.stem}_mask.png"
            mask = _read_mask(mask_path, path, size, image_size)
        images.append(image)
        masks.append(mask)
    names = tuple(defect for defect, _ in files)
    labels = torch.tensor([defect != NORMAL for defect in names], dtype=torch.int64)
    return AnomalySplit(torch.stack(images), torch.stack(masks), labels, names, category)
