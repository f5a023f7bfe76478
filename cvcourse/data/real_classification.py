"""Real labelled images for the generative chapters: MNIST, Fashion-MNIST and CIFAR-10, via torchvision.

Items are ``(image, label)`` like ``Glyphs``: a float ``tv_tensors.Image`` (C, H, W) in [0, 1] (C = 1 for
the MNISTs, 3 for CIFAR-10) and an int, and every dataset has ``class_names`` and ``num_classes``, so the
same training code runs on the synthetic digits and on these. A missing dataset raises
``DatasetNotFoundError`` saying where to get it and where to put it; ``download=True`` lets torchvision fetch it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST, VisionDataset
from torchvision.transforms import v2

from cvcourse.data.folders import data_root, require_folder

MNIST_CLASSES = tuple(str(digit) for digit in range(10))  # as Glyphs names them; torchvision says "0 - zero", ...
FASHION_MNIST_CLASSES = tuple(FashionMNIST.classes)  # "T-shirt/top", "Trouser", ..., "Ankle boot"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


class _CIFAR10Files(CIFAR10):
    """torchvision's CIFAR-10, checking on load that its six batches and ``batches.meta`` exist, not their md5.

    torchvision re-hashes every file (180 MB) each time the dataset is built and refuses any file whose md5
    is not the published one. Here the check is made once, when it matters: ``download=True`` fetches
    ``cifar-10-python.tar.gz`` through torchvision's ``download_and_extract_archive``, which verifies the
    archive's md5 before unpacking it. Files you put in place yourself are read as they are.
    """

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def _mirror(source: type[MNIST]) -> str:
    """The first https mirror torchvision lists (torchvision < 0.22 lists the defunct yann.lecun.com first)."""
    return next((url for url in source.mirrors if url.startswith("https://")), source.mirrors[0])


def _idx_layout(source: type[MNIST], function: str, size: str) -> dict[str, Any]:
    """Where torchvision's MNIST or FashionMNIST reads its four uncompressed idx files, and how to get them."""
    archives = [name for name, _ in source.resources]
    return dict(
        folder=f"{source.__name__}/raw",  # torchvision names the folder after its class
        files=[name.removesuffix(".gz") for name in archives],
        how_to_get=f"call {function}(download=True) (needs internet, as on Colab; about {size}), or download "
        f"{', '.join(archives)} from {_mirror(source)} and gunzip them into the folder below",
    )


def _load(
    source: type[VisionDataset],
    train: bool,
    root: str | os.PathLike | None,
    image_size: int | None,
    download: bool,
    *,
    class_names: Sequence[str],
    dataset: str,
    folder: str,
    files: Sequence[str],
    how_to_get: str,
) -> VisionDataset:
    """``source(root, train, download)`` giving float Images, resized if asked, after ``require_folder``."""
    if not isinstance(train, bool):
        raise TypeError(f"train must be True (the training split) or False (the test split), got {train!r}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8):
        raise ValueError(f"image_size must be None (the dataset's own size) or an integer >= 8 (the side of the "
                         f"square output), got {image_size!r}")
    root = Path(root).expanduser() if root is not None else data_root()
    if not download:
        require_folder(root / folder, dataset=dataset, expected=files, how_to_get=how_to_get)
    resize = [] if image_size is None else [v2.Resize((image_size, image_size), antialias=True)]
    # Resizing the uint8 image rounds to 8 bits, so the floats stay in [0, 1]; resizing floats can overshoot 1.
    transform = v2.Compose([v2.ToImage(), *resize, v2.ToDtype(torch.float32, scale=True)])
    loaded = source(root, train=train, transform=transform, download=download)
    loaded.class_names = tuple(class_names)
    loaded.num_classes = len(class_names)
    return loaded


def mnist(
    train: bool = True, *, root: str | os.PathLike | None = None, image_size: int | None = None,
    download: bool = False,
) -> VisionDataset:
    """MNIST handwritten digits (LeCun, Bottou, Bengio & Haffner 1998) via ``torchvision.datasets.MNIST``.

    Items are ``(image, label)``: ``image`` float (1, 28, 28) in [0, 1], a white digit on black, resized
    with antialiasing to (1, image_size, image_size) if ``image_size`` is given; ``label`` the digit 0..9
    (``class_names`` "0".."9", as in ``Glyphs``). ``train`` picks the 60,000 training or the 10,000 test
    images. The files live in ``root / "MNIST" / "raw"``, ``root`` defaulting to ``data_root()``.
    """
    return _load(MNIST, train, root, image_size, download, class_names=MNIST_CLASSES, dataset="MNIST",
                 **_idx_layout(MNIST, "mnist", "12 MB"))


def fashion_mnist(
    train: bool = True, *, root: str | os.PathLike | None = None, image_size: int | None = None,
    download: bool = False,
) -> VisionDataset:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) via ``torchvision.datasets.FashionMNIST``.

    Zalando's article photos in MNIST's format: items are ``(image, label)`` with ``image`` float
    (1, 28, 28) in [0, 1] (a light article on black), resized like ``mnist``; ``label`` 0..9 indexing
    ``class_names`` ("T-shirt/top" .. "Ankle boot"). 60,000 training and 10,000 test images. The files
    live in ``root / "FashionMNIST" / "raw"``, ``root`` defaulting to ``data_root()``.
    """
    return _load(FashionMNIST, train, root, image_size, download, class_names=FASHION_MNIST_CLASSES,
                 dataset="Fashion-MNIST", **_idx_layout(FashionMNIST, "fashion_mnist", "30 MB"))


def cifar10(
    train: bool = True, *, root: str | os.PathLike | None = None, image_size: int | None = None,
    download: bool = False,
) -> VisionDataset:
    """CIFAR-10 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images") via torchvision.

    Items are ``(image, label)``: ``image`` float (3, 32, 32) RGB in [0, 1], resized with antialiasing to
    (3, image_size, image_size) if ``image_size`` is given; ``label`` 0..9 indexing ``class_names``
    ("airplane" .. "truck"). ``train`` picks the 50,000 training images (``data_batch_1`` .. ``_5``) or the
    10,000 test images (``test_batch``). The files live in ``root / "cifar-10-batches-py"``, ``root``
    defaulting to ``data_root()``; see ``_CIFAR10Files`` for when checksums are verified.
    """
    files = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    return _load(
        _CIFAR10Files, train, root, image_size, download, class_names=CIFAR10_CLASSES, dataset="CIFAR-10",
        folder=CIFAR10.base_folder, files=files,
        how_to_get=f"call cifar10(download=True) (needs internet, as on Colab; about 163 MB), or download "
        f"{CIFAR10.filename} (the python version) from {CIFAR10_URL} and untar it into the folder's parent",
    )
