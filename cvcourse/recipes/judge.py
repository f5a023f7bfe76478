"""The judge of generated glyphs: a SmallCNN trained once per machine, cached, and read by chapters 03 to 06.

``glyph_judge()`` returns an :class:`cvcourse.generative.metrics.ImageQuality` around the classifier trained with
``RECIPE`` on ``glyph_tensors(RECIPE.train_size, image_size, seed=0)`` and tested on ``RECIPE.test_size`` glyphs of
seed 1. The recipe does not depend on the profile, so FCD values compare across profiles (on one machine: each
machine trains its own judge, and rounding makes judges differ slightly). It trains well past the point where it
classifies 98% of held-out glyphs right: a longer-trained judge is confident on real glyphs, so the share of
confident samples measures the samples, not the judge's doubt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.cache import cached_model, tensor_digest
from cvcourse.config import settings_key
from cvcourse.data.glyphs import Glyphs, glyph_tensors
from cvcourse.generative.metrics import ImageQuality, check_images
from cvcourse.inference import predict
from cvcourse.models.classifier import SmallCNN
from cvcourse.recipes.training import fit_classifier

MIN_ACCURACY = 0.98  # a weaker judge is refused


@dataclass(frozen=True)
class JudgeRecipe:
    """How the judge is trained, and on how many glyphs."""

    width: int = 32
    steps: int = 1000
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    train_size: int = 10_000
    test_size: int = 2_000


RECIPE = JudgeRecipe()


def _classifier(num_classes: int, in_channels: int, width: int, seed: int) -> SmallCNN:
    """A SmallCNN initialised from ``seed``, leaving the global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(num_classes, in_channels=in_channels, width=width)


def _check_labels(labels: torch.Tensor, count: int, num_classes: int, name: str) -> None:
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != (count,):
        got = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be an int64 tensor ({count},), one class per image, got {got}.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"{name} must be in 0..{num_classes - 1}; got {int(labels.min())}..{int(labels.max())}.")


def _accuracy(model: SmallCNN, images: torch.Tensor, labels: torch.Tensor) -> float:
    logits, targets = predict(model, DataLoader(TensorDataset(images, labels), batch_size=500))
    return float((logits.argmax(dim=1) == targets).double().mean())


def train_judge(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                test_labels: torch.Tensor, *, num_classes: int, recipe: JudgeRecipe | None = None,
                device: str | torch.device | None = None, progress: bool = False) -> tuple[SmallCNN, float]:
    """Train a SmallCNN judge on float images in [0, 1] and int64 labels (course Trainer, AdamW, one-cycle).

    Returns the classifier (eval mode, on the CPU) and its accuracy on the test images.
    """
    recipe = recipe or RECIPE
    channels = train_images.shape[1] if isinstance(train_images, torch.Tensor) and train_images.ndim == 4 else 1
    for images, labels, name in ((train_images, train_labels, "train"), (test_images, test_labels, "test")):
        check_images(images, channels, name=f"{name}_images")
        _check_labels(labels, len(images), num_classes, f"{name}_labels")
    model = _classifier(num_classes, channels, recipe.width, recipe.seed)
    fit_classifier(model, train_images, train_labels, steps=recipe.steps, batch_size=recipe.batch_size,
                       lr=recipe.lr, seed=recipe.seed, device=device, progress=progress)
    return model.cpu().eval(), _accuracy(model, test_images, test_labels)


def glyph_judge(image_size: int = 28, *, device: str | torch.device | None = None, rebuild: bool = False,
                progress: bool = False) -> ImageQuality:
    """The course's judge of generated glyphs, trained with ``RECIPE`` once per machine and cached.

    ``judge.accuracy`` is its held-out accuracy; the reference statistics are the features of its training glyphs
    (cached with it). Raises RuntimeError if the accuracy is below ``MIN_ACCURACY``.
    """
    recipe = RECIPE
    train_images, train_labels = glyph_tensors(recipe.train_size, image_size, seed=0)
    key = {**settings_key(recipe), "image_size": image_size, "train_data": tensor_digest(train_images, train_labels)}

    def build() -> SmallCNN:
        return _classifier(Glyphs.num_classes, train_images.shape[1], recipe.width, recipe.seed)

    def train(model: SmallCNN, checkpoint_dir: Path) -> dict:
        test_images, test_labels = glyph_tensors(recipe.test_size, image_size, seed=1)
        fit_classifier(model, train_images, train_labels, steps=recipe.steps, batch_size=recipe.batch_size,
                       lr=recipe.lr, seed=recipe.seed, device=device, progress=progress,
                       checkpoint_dir=checkpoint_dir)
        reference = ImageQuality(model, train_images, device=device)
        return {"accuracy": _accuracy(model, test_images, test_labels),
                "reference_mean": torch.from_numpy(reference.reference_mean),
                "reference_covariance": torch.from_numpy(reference.reference_covariance)}

    classifier, info = cached_model("glyph-judge", key, build, train, rebuild=rebuild)
    if info["accuracy"] < MIN_ACCURACY:
        raise RuntimeError(f"The glyph judge reaches only {info['accuracy']:.2%} held-out accuracy (at least "
                           f"{MIN_ACCURACY:.0%} needed): its FCD would not be trustworthy. Train it longer "
                           "(raise RECIPE.steps in cvcourse/recipes/judge.py), then call glyph_judge(rebuild=True).")
    return ImageQuality.from_statistics(classifier, info["reference_mean"], info["reference_covariance"],
                                        train_images.shape[-2:], device=device, accuracy=info["accuracy"])
