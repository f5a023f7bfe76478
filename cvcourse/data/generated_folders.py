"""Real and generated (AI-made) images side by side, for training and testing detectors of generated images.

Three layouts are recognised, each a folder per split holding a folder of real and a folder of generated images
(``LAYOUTS``): CIFAKE (Bird & Lotfi, IEEE Access 2024; Kaggle: CIFAR-10's photos against Stable Diffusion 1.4's
pictures of the same ten classes, 32x32, splits ``train`` and ``test``) keeps them in ``REAL/`` and ``FAKE/``;
GenImage (Zhu et al., NeurIPS 2023: ImageNet's photos against eight generators prompted with ImageNet's classes,
one folder per generator, splits ``train`` and ``val``) in ``nature/`` and ``ai/``; a folder of your own in
``real/`` and ``generated/``. ``generated_image_folder`` reads one split into tensors at once.

A detector learns whatever tells the two classes apart, and that need not be generation. Grommelt et al. ("Fake or
JPEG? Revealing Common Biases in Generated Image Detection Datasets", 2024) found the real images of GenImage, and
of the benchmark of DIRE (Wang et al., ICCV 2023), stored as JPEG and the generated ones as PNG, at other sizes
too, and showed that detectors trained on GenImage learn the JPEG compression and the size. ``shortcuts`` lists such
differences in a split before a detector is trained on it.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as TF

from cvcourse.data.folders import require_folder
from cvcourse.data.real import _open

CIFAKE_URL = "https://www.kaggle.com/datasets/birdy654/cifake-real-and-ai-generated-synthetic-images"
GENIMAGE_URL = "https://github.com/GenImage-Dataset/GenImage"
# layout -> (folder of real images, folder of generated images) inside a split's folder; the first match wins
LAYOUTS = {"CIFAKE": ("REAL", "FAKE"), "GenImage": ("nature", "ai"), "generic": ("real", "generated")}
TEST_SPLITS = {"CIFAKE": "test", "GenImage": "val", "generic": "test"}  # the held-out split of each layout
CLASSES = ("real", "generated")  # label 0, label 1
# lower-case suffix of an image file -> how its pixels are stored; other files are ignored
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WebP"}
MODES = {1: "L", 3: "RGB"}  # channels -> PIL mode
# Formats or sizes are a shortcut when their distributions in the two classes differ by more than this total
# variation distance d: the attribute alone then classifies a balanced split with accuracy 0.5 + d / 2 > 0.55.
SHORTCUT_TOLERANCE = 0.1
_LAYOUT_TEXT = ", ".join(f"{real}/ and {generated}/ ({layout})" for layout, (real, generated) in LAYOUTS.items())
HOW_TO_GET = (f"download CIFAKE from {CIFAKE_URL} (32x32, splits train and test) or one generator's folder of "
              f"GenImage from {GENIMAGE_URL} (splits train and val), or bring your own images; each split is a "
              f"folder holding {_LAYOUT_TEXT}")


@dataclass(frozen=True)
class GeneratedImageSplit:
    """One split of real and generated images: ``images`` float (N, C, S, S) in [0, 1], ``labels`` int64 (N,)
    (1 = generated, 0 = real), each image's file in ``paths``, the ``layout`` it was found in (a key of
    ``LAYOUTS``), and per class (``"real"``, ``"generated"``) the count of each file suffix (``formats``) and of
    each original size, ``"WxH"`` (``sizes``): what ``shortcuts`` compares."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: tuple[Path, ...]
    layout: str
    formats: dict[str, dict[str, int]]
    sizes: dict[str, dict[str, int]]

    def __len__(self) -> int:
        return len(self.images)


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in FORMATS and path.is_file())


def _read_image(path: Path, image_size: int, channels: int) -> tuple[torch.Tensor, str]:
    """An image as float (C, S, S) in [0, 1], resized bilinearly with antialiasing, and its original size "WxH"."""
    with _open(path) as picture:
        width, height = picture.size
        image = TF.to_dtype(TF.to_image(picture.convert(MODES[channels])), torch.float32, scale=True)
    return TF.resize(image, [image_size, image_size], antialias=True).clamp_(0, 1), f"{width}x{height}"


def generated_image_folder(root: str | os.PathLike, split: str = "train", image_size: int = 32,
                           channels: int = 3) -> GeneratedImageSplit:
    """The real and generated images of ``<root>/<split>/`` as a :class:`GeneratedImageSplit`.

    The split's folder holds the two class folders of one of ``LAYOUTS`` (CIFAKE, GenImage or your own; the first
    layout with either folder there wins); the files of each (``FORMATS``, any case of suffix) are read in sorted
    order, real images first, converted to grey (``channels=1``) or RGB (``channels=3``) and resized bilinearly
    with antialiasing to ``image_size`` x ``image_size``. A whole split is held in memory: CIFAKE's 100,000
    training images take 1.2 GB at 32x32 in RGB.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8 (the side of the square output), got {image_size!r}")
    if isinstance(channels, bool) or channels not in MODES:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    root = Path(root).expanduser()
    folder = require_folder(root, dataset="real and generated images", expected=[split], how_to_get=HOW_TO_GET) / split
    present = sorted(path.name for path in folder.iterdir() if path.is_dir())
    layout = next((name for name, pair in LAYOUTS.items() if set(pair) & set(present)), None)
    if layout is None:
        raise ValueError(f"{folder} holds none of the class folders of the layouts this loader knows, {_LAYOUT_TEXT}; "
                         f"it holds {', '.join(f'{name}/' for name in present) or 'no folders'}. Rename its two class "
                         "folders after one of these layouts")
    files = {}
    for name, class_folder in zip(CLASSES, LAYOUTS[layout]):
        files[name] = _image_files(folder / class_folder)
        if not files[name]:
            problem = "holds no image files" if (folder / class_folder).is_dir() else "does not exist"
            raise ValueError(f"the {split!r} split has no {name} images: {folder / class_folder} {problem} "
                             f"({layout} layout, image files end in {', '.join(FORMATS)}). A detector needs both real "
                             f"and generated images: put the {name} images there")
    images, formats, sizes = [], {}, {}
    for name in CLASSES:
        counted_sizes = Counter()
        for path in files[name]:
            image, size = _read_image(path, image_size, channels)
            images.append(image)
            counted_sizes[size] += 1
        formats[name] = dict(sorted(Counter(path.suffix.lower() for path in files[name]).items()))
        sizes[name] = dict(sorted(counted_sizes.items()))
    labels = torch.tensor([label for label, name in enumerate(CLASSES) for _ in files[name]], dtype=torch.int64)
    paths = tuple(path for name in CLASSES for path in files[name])
    return GeneratedImageSplit(torch.stack(images), labels, paths, layout, formats, sizes)


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: count / total for key, count in counts.items()}


def _distance(first: dict[str, float], second: dict[str, float]) -> float:
    """Total variation distance between two distributions over named values."""
    return sum(abs(first.get(key, 0.0) - second.get(key, 0.0)) for key in first.keys() | second.keys()) / 2


def _describe(shares: dict[str, float], most: int = 3) -> str:
    """"100% PNG", "60% 500x375, 40% 375x500", the ``most`` commonest values first, then how many more."""
    ranked = sorted(shares.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{share:.0%} {value}" for value, share in ranked[:most])
    return text + (f" and {len(ranked) - most} more" if len(ranked) > most else "")


def shortcuts(split: GeneratedImageSplit) -> list[str]:
    """One plain-English warning per attribute other than content that tells the split's classes apart.

    Compared are the file formats (``.jpg`` and ``.jpeg`` are both JPEG) and the original sizes of the real and
    the generated images; an attribute is reported when its distributions in the two classes differ by more than
    ``SHORTCUT_TOLERANCE`` (total variation). An empty list means that neither gives the classes away.
    """
    warnings = []
    codecs = {name: Counter() for name in CLASSES}
    for name in CLASSES:
        for suffix, count in split.formats[name].items():
            codecs[name][FORMATS[suffix]] += count
    real, generated = _shares(codecs["real"]), _shares(codecs["generated"])
    if _distance(real, generated) > SHORTCUT_TOLERANCE:
        learnt = "JPEG compression" if real.get("JPEG", 0) != generated.get("JPEG", 0) else "the file format"
        warnings.append(f"real images are {_describe(real)}, generated {_describe(generated)}: a detector can learn "
                        f"{learnt} instead of generation; re-encode both sides the same way (see the chapter's "
                        "format section)")
    real, generated = _shares(split.sizes["real"]), _shares(split.sizes["generated"])
    if _distance(real, generated) > SHORTCUT_TOLERANCE:
        warnings.append(f"real images are {_describe(real)}, generated {_describe(generated)} (width x height): a "
                        "detector can learn the original size (and the traces resizing leaves) instead of generation; "
                        "crop both sides to one size before resizing, or keep only the sizes both classes share")
    return warnings
