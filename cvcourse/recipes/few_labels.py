"""The few-label experiment of chapters 11 (cells) and 12 (street scenes): few labelled images, a mask-conditioned
diffusion model that makes image-mask pairs, DatasetGAN-style pairs, and the segmenters trained on each.

A pool of training images comes from seed 0: its first K images are the labelled ones, and all of its images are
the unlabelled data the unconditional diffusion model learns from. The test images come from seed 1 and the masks
the pairs are generated for from seed 2: layouts no model has seen, drawn by the data generator, which knows the
true distribution of layouts (a real project would have to draw or edit its masks).

Every regime trains the same small U-Net for the same steps; the seeds change its initialisation, its batches and
its augmentation, not the labelled images or the generated pairs, which are fixed per K. The chapter's settings
name the dataset (``DATASETS``); binary masks are scored by the mean Dice (IoU for faithfulness) over images,
several classes by the mIoU of the whole split. Trained models, generated pairs and scores are cached.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2
from tqdm.auto import tqdm

from cvcourse import config
from cvcourse.cache import cached, cached_model, tensor_digest
from cvcourse.config import settings_key
from cvcourse.data import StreetScenes, SyntheticCells, materialize, segmentation_transforms
from cvcourse.data.few_images import crops, repeated, symmetries
from cvcourse.data.streets import STREET_CLASSES
from cvcourse.diffusion.forward import to_image_range
from cvcourse.diffusion.samplers import ddim_sample
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.diffusion.training import keep_ema, train_diffusion
from cvcourse.models import DiffusionUNet, UNet
from cvcourse.models.mask_diffusion_unet import MaskDiffusionUNet
from cvcourse.recipes.training import require_finished, training_info
from cvcourse.seeding import seed_everything
from cvcourse.segmentation import bce_dice_loss, ce_dice_loss, segment, train_segmentation
from cvcourse.segmentation.diffusion_features import diffusion_features, fit_pixel_labeller
from cvcourse.segmentation.metrics import confusion_matrix, dice, iou, mean_iou

REGIMES = ("real", "augmented", "generated", "augmented + generated", "datasetgan")
POOL_SEED, TEST_SEED, MASK_SEED = 0, 1, 2


@dataclass(frozen=True)
class Dataset:
    """What the experiment needs to know of a dataset: how to draw ``count`` images (N, C, H, W) in [0, 1] and
    class maps (N, H, W) of a size from a seed, its channels and class names, and whether it has an up and down
    (street scenes do, so only their left-right flips are symmetries; cells do not, so quarter turns are too)."""

    draw: Callable[[int, tuple[int, int], int], tuple[torch.Tensor, torch.Tensor]]
    channels: int
    classes: tuple[str, ...]
    upright: bool

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2


def _draw_cells(count: int, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if size[0] != size[1]:
        raise ValueError(f"the synthetic cells are square; got image_size {size}, use one side like 32.")
    return materialize(SyntheticCells(count, size[0], seed=seed), target_key="mask")


DATASETS = {"cells": Dataset(_draw_cells, 1, ("background", "cell"), upright=False),
            "streets": Dataset(lambda count, size, seed: materialize(StreetScenes(count, size, seed=seed)), 3,
                               STREET_CLASSES, upright=True)}


@dataclass(frozen=True)
class DdpmRecipe:
    """The diffusion models of the chapter: a residual U-Net on 2x2 patches, without attention (a local model
    generalises from a few images instead of remembering them), trained on the flips (and, without an up and down,
    quarter turns) of its images (``symmetries``). With ``crop_width`` it trains on crops of that width taken every
    ``crop_stride`` pixels across each image (``crops``): a few wide images give many training images, each step is
    cheaper, and the U-Net, convolutional and without attention, still draws full-width images; the mask says where
    everything goes. The mask-conditioned model drops its mask at ``drop_mask_prob`` for classifier-free guidance."""

    version: int = 1
    schedule: str = "cosine"
    timesteps: int = 1000
    width: int = 24
    depth: int = 2
    patch_size: int = 2
    symmetries: bool = True
    crop_width: int | None = None
    crop_stride: int = 4
    drop_mask_prob: float = 0.2
    batch_size: int = 32
    steps: int = 800
    lr: float = 2e-3
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.995
    seed: int = 0


@dataclass(frozen=True)
class SegmenterRecipe:
    """The U-Net every regime trains (chapter 02's, smaller), and the augmentation of the augmented regimes."""

    depth: int = 2
    width: int = 8
    steps: int = 100
    batch_size: int = 16
    lr: float = 3e-3
    elastic_alpha: float = 20.0
    brightness: float = 0.3
    min_crop: float = 0.6  # RandomResizedCrop's smallest share of the image


@dataclass(frozen=True)
class Settings(config.Settings):
    """The cells' settings (chapter 11's); chapter 12 changes the dataset and sizes."""

    dataset: str = "cells"
    image_size: int | tuple[int, int] = 32
    pool_size: int = 1000
    test_size: int = 200
    label_counts: tuple[int, ...] = (5, 10, 25, 100)
    seeds: tuple[int, ...] = (0, 1, 2)
    regimes: tuple[str, ...] = REGIMES
    generated_pairs: int = 200  # M: new masks, and the images generated for them
    sample_steps: int = 25  # DDIM steps (eta = 0)
    guidance_scale: float = 4.0
    guidance_sweep: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    sweep_masks: int = 48
    feature_timesteps: tuple[int, ...] = (50, 150)
    labeller_steps: int = 300
    labeller_pixels: int = 16_384  # pixels per step of the labeller's training
    ddpm: DdpmRecipe = DdpmRecipe()
    segmenter: SegmenterRecipe = SegmenterRecipe()
    judge: SegmenterRecipe = SegmenterRecipe(depth=3, width=16, steps=400)  # trained on the whole labelled pool
    targets: Mapping[str, str] = field(default_factory=lambda: {"faithfulness_iou": ">= 0.80"})


def dataset(cfg: config.Config) -> Dataset:
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; choose one of {', '.join(DATASETS)}.")
    return DATASETS[cfg.dataset]


def image_shape(cfg: config.Config) -> tuple[int, int, int]:
    """(channels, height, width) of the chapter's images."""
    size = cfg.image_size
    return (dataset(cfg).channels, *((size, size) if isinstance(size, int) else size))


def images_and_masks(cfg: config.Config, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) and masks (N, H, W) of the ``"pool"`` (seed 0), ``"test"`` (seed 1) or ``"new masks"``
    (seed 2, ``generated_pairs`` of them: only their masks are used). Drawn once per process and shared: do not
    change them in place."""
    count, seed = {"pool": (cfg.pool_size, POOL_SEED), "test": (cfg.test_size, TEST_SEED),
                   "new masks": (cfg.generated_pairs, MASK_SEED)}[split]
    return _drawn(cfg.dataset, count, image_shape(cfg)[1:], seed)


@functools.lru_cache(maxsize=8)
def _drawn(name: str, count: int, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return DATASETS[name].draw(count, size, seed)


def labelled(cfg: config.Config, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The K labelled images and masks: the first ``k`` of the pool."""
    if not 1 <= k <= cfg.pool_size:
        raise ValueError(f"the pool holds {cfg.pool_size} labelled images; K must lie in [1, {cfg.pool_size}], "
                         f"got {k}.")
    images, masks = images_and_masks(cfg, "pool")
    return images[:k], masks[:k]


def noise_schedule(recipe: DdpmRecipe) -> NoiseSchedule:
    return NoiseSchedule.named(recipe.schedule, recipe.timesteps)


def _diffusion_options(recipe: DdpmRecipe) -> dict[str, Any]:
    return dict(base_width=recipe.width, depth=recipe.depth, block="residual", attention=False,
                patch_size=recipe.patch_size, timesteps=recipe.timesteps)


def _train_ddpm(cfg: config.Config, model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor | None,
                checkpoint_dir: Path, progress: bool) -> dict[str, Any]:
    recipe = cfg.ddpm
    data = (images,) if masks is None else (images, masks)
    if recipe.symmetries:
        data = symmetries(*data, upright=dataset(cfg).upright)
    if recipe.crop_width is not None:
        data = crops(*data, width=recipe.crop_width, stride=recipe.crop_stride)
    data = repeated(data, 2 * recipe.batch_size)
    labels = data[1] if masks is not None else torch.zeros(len(data[0]), dtype=torch.long)
    trainer = train_diffusion(model, noise_schedule(recipe), data[0], labels, steps=recipe.steps,
                              batch_size=recipe.batch_size, lr=recipe.lr, ema_decay=recipe.ema_decay,
                              conditional=masks is not None,
                              drop_label_prob=recipe.drop_mask_prob if masks is not None else 0.0,
                              min_snr_gamma=recipe.min_snr_gamma, seed=recipe.seed, device=cfg.device,
                              checkpoint_dir=checkpoint_dir, checkpoint_every=max(100, recipe.steps // 4),
                              resume=True, progress=progress)
    require_finished(trainer, recipe.steps)
    keep_ema(model, trainer)
    return training_info(trainer)


def _data_key(cfg: config.Config) -> dict[str, Any]:
    return dict(image_size=cfg.image_size, pool_size=cfg.pool_size)


def trained_mask_ddpm(cfg: config.Config, k: int, *, progress: bool = False) -> tuple[MaskDiffusionUNet, dict]:
    """The mask-conditioned diffusion model trained on the K labelled pairs only (cached), and its info."""
    data = dataset(cfg)

    def build() -> MaskDiffusionUNet:
        seed_everything(cfg.ddpm.seed)
        return MaskDiffusionUNet(data.channels, len(data.classes), **_diffusion_options(cfg.ddpm))

    def train(model: MaskDiffusionUNet, checkpoint_dir: Path) -> dict[str, Any]:
        return _train_ddpm(cfg, model, *labelled(cfg, k), checkpoint_dir, progress)

    model, info = cached_model(f"{cfg.dataset}-mask-ddpm", {**settings_key(cfg.ddpm), **_data_key(cfg), "k": k},
                               build, train)
    return model.to(cfg.device).eval(), info


def trained_unconditional_ddpm(cfg: config.Config, *, progress: bool = False) -> tuple[DiffusionUNet, dict]:
    """The unconditional diffusion model of every pool image (no mask needed), cached: DatasetGAN's generator."""
    def build() -> DiffusionUNet:
        seed_everything(cfg.ddpm.seed)
        return DiffusionUNet(dataset(cfg).channels, **_diffusion_options(cfg.ddpm))

    def train(model: DiffusionUNet, checkpoint_dir: Path) -> dict[str, Any]:
        return _train_ddpm(cfg, model, images_and_masks(cfg, "pool")[0], None, checkpoint_dir, progress)

    model, info = cached_model(f"{cfg.dataset}-ddpm", {**settings_key(cfg.ddpm), **_data_key(cfg)}, build, train)
    return model.to(cfg.device).eval(), info


def sample(cfg: config.Config, model: torch.nn.Module, count: int, *, masks: torch.Tensor | None = None,
           guidance_scale: float = 0.0, seed: int = 0) -> torch.Tensor:
    """``count`` images in [0, 1] from ``model`` (for ``masks`` when given): DDIM, eta 0, ``cfg.sample_steps``."""
    with torch.no_grad():
        x = ddim_sample(model, noise_schedule(cfg.ddpm).to(cfg.device), (count, *image_shape(cfg)),
                        steps=cfg.sample_steps, labels=None if masks is None else masks.to(cfg.device),
                        guidance_scale=guidance_scale, generator=torch.Generator().manual_seed(seed))
    return to_image_range(x).cpu()


def segmenter(cfg: config.Config, recipe: SegmenterRecipe, seed: int = 0) -> UNet:
    """The recipe's U-Net: one logit per pixel for binary masks (sigmoid), one per class otherwise (softmax)."""
    data = dataset(cfg)
    seed_everything(seed)
    return UNet(data.channels, 1 if data.binary else len(data.classes), depth=recipe.depth, base_width=recipe.width)


def strong_augmentation(cfg: config.Config) -> v2.Compose:
    """Flips (left-right only for upright images), a random resized crop, the U-Net paper's elastic deformation and
    a brightness and contrast jitter."""
    recipe, upright = cfg.segmenter, dataset(cfg).upright
    return v2.Compose([*([v2.RandomHorizontalFlip()] if upright else []),
                       segmentation_transforms(flips=not upright, elastic_alpha=recipe.elastic_alpha,
                                               brightness=recipe.brightness),
                       v2.RandomResizedCrop(image_shape(cfg)[1:], scale=(recipe.min_crop, 1.0), antialias=True)])


def train_segmenter(cfg: config.Config, recipe: SegmenterRecipe, images: torch.Tensor, masks: torch.Tensor, *,
                    augment: bool = False, seed: int = 0) -> UNet:
    """The recipe's U-Net trained on the pairs (repeated to fill two batches when they are few), with BCE + Dice
    for binary masks and cross-entropy + Dice for several classes."""
    model = segmenter(cfg, recipe, seed)
    images, masks = repeated((images, masks), 2 * recipe.batch_size)
    loss_fn = bce_dice_loss if dataset(cfg).binary else ce_dice_loss
    train_segmentation(model, images, masks, loss_fn=loss_fn, steps=recipe.steps, batch_size=recipe.batch_size,
                       lr=recipe.lr, seed=seed, device=cfg.device,
                       transforms=strong_augmentation(cfg) if augment else None, progress=False, live_plot=False)
    return model.eval()


def judge(cfg: config.Config) -> UNet:
    """A segmenter trained on every labelled pool image (cached): the judge of how faithful generated images are
    to their masks, and the ceiling of the few-label experiment."""
    def train(model: UNet, checkpoint_dir: Path) -> dict[str, Any]:
        images, masks = images_and_masks(cfg, "pool")
        started = time.perf_counter()
        model.load_state_dict(train_segmenter(cfg, cfg.judge, images, masks).state_dict())
        return {"seconds": time.perf_counter() - started}

    model, _ = cached_model(f"{cfg.dataset}-judge", {**settings_key(cfg.judge), **_data_key(cfg)},
                            lambda: segmenter(cfg, cfg.judge), train)
    return model.to(cfg.device).eval()


def agreement(cfg: config.Config, predicted: torch.Tensor, true: torch.Tensor, *, binary_metric=dice) -> float:
    """How well masks agree: for binary masks ``binary_metric`` (Dice, or IoU) averaged over the images; for several
    classes the mIoU of the whole set (one confusion matrix, as Cityscapes scores)."""
    data = dataset(cfg)
    if data.binary:
        return binary_metric(predicted, true).mean().item()
    return mean_iou(confusion_matrix(predicted, true, len(data.classes)))


def test_score(cfg: config.Config, model: UNet) -> float:
    """The test score of ``model``: mean Dice over the test cells, or the mIoU of the test scenes."""
    images, masks = images_and_masks(cfg, "test")
    return agreement(cfg, segment(model, images, device=cfg.device).cpu(), masks)


def faithfulness(cfg: config.Config, images: torch.Tensor, masks: torch.Tensor) -> float:
    """How well the judge's masks of generated ``images`` agree with the ``masks`` they were generated for: the mean
    IoU over images for binary masks, the mIoU for several classes."""
    return agreement(cfg, segment(judge(cfg), images, device=cfg.device).cpu(), masks, binary_metric=iou)


def mask_pairs(cfg: config.Config, k: int, *, progress: bool = False) -> dict[str, torch.Tensor]:
    """``generated_pairs`` images generated for new masks by the K-label mask model (cached), with the masks."""
    model, _ = trained_mask_ddpm(cfg, k, progress=progress)
    masks = images_and_masks(cfg, "new masks")[1]
    key = dict(model=tensor_digest(*model.state_dict().values()), masks=tensor_digest(masks),
               steps=cfg.sample_steps, guidance_scale=cfg.guidance_scale)
    return cached(f"{cfg.dataset}-mask-pairs", key, lambda: {
        "images": sample(cfg, model, len(masks), masks=masks, guidance_scale=cfg.guidance_scale), "masks": masks})


def datasetgan_pairs(cfg: config.Config, k: int, *, progress: bool = False) -> dict[str, torch.Tensor]:
    """Unconditional samples labelled by a pixel labeller trained on the diffusion features of the K labelled
    images (cached), and the labeller's test score on the real test images (``labeller_test_score``)."""
    model, _ = trained_unconditional_ddpm(cfg, progress=progress)
    classes = dataset(cfg).classes
    key = dict(model=tensor_digest(*model.state_dict().values()), k=k, count=cfg.generated_pairs,
               steps=cfg.sample_steps, timesteps=list(cfg.feature_timesteps), labeller=cfg.labeller_steps,
               labeller_pixels=cfg.labeller_pixels, **_data_key(cfg))

    def make() -> dict[str, Any]:
        schedule = noise_schedule(cfg.ddpm)
        images, masks = labelled(cfg, k)
        labeller = fit_pixel_labeller(diffusion_features(model, schedule, images, cfg.feature_timesteps), masks,
                                      num_classes=len(classes), steps=cfg.labeller_steps,
                                      pixels_per_step=cfg.labeller_pixels, seed=0)

        def label(images: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                logits = labeller(diffusion_features(model, schedule, images, cfg.feature_timesteps))
            return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)

        samples = sample(cfg, model, cfg.generated_pairs, seed=1)
        test_images, test_masks = images_and_masks(cfg, "test")
        return {"images": samples, "masks": label(samples),
                "labeller_test_score": agreement(cfg, label(test_images), test_masks)}

    return cached(f"{cfg.dataset}-datasetgan", key, make)


def regime_data(cfg: config.Config, k: int, regime: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The images, masks and whether to augment of one regime at K labels."""
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}.")
    images, masks = labelled(cfg, k)
    if regime in ("generated", "augmented + generated", "datasetgan"):
        pairs = datasetgan_pairs(cfg, k) if regime == "datasetgan" else mask_pairs(cfg, k)
        images, masks = torch.cat([images, pairs["images"]]), torch.cat([masks, pairs["masks"]])
    return images, masks, regime.startswith("augmented")


def regime_score(cfg: config.Config, k: int, regime: str, seed: int) -> dict[str, float]:
    """Test score and training seconds of the segmenter of one regime, K and seed (cached)."""
    images, masks, augment = regime_data(cfg, k, regime)
    key = dict(segmenter=settings_key(cfg.segmenter), regime=regime, seed=seed, data=tensor_digest(images, masks),
               **_data_key(cfg), test_size=cfg.test_size)

    def make() -> dict[str, float]:
        started = time.perf_counter()
        model = train_segmenter(cfg, cfg.segmenter, images, masks, augment=augment, seed=seed)
        return {"score": test_score(cfg, model), "seconds": time.perf_counter() - started}

    return cached(f"{cfg.dataset}-segmenter-score", key, make)


def few_label_table(cfg: config.Config, *, progress: bool = False) -> dict[str, dict[int, list[float]]]:
    """Test scores per regime, K and seed: ``table[regime][k]`` lists one score per seed."""
    table: dict[str, dict[int, list[float]]] = {regime: {k: [] for k in cfg.label_counts} for regime in cfg.regimes}
    runs = [(k, regime, seed) for k in cfg.label_counts for regime in cfg.regimes for seed in cfg.seeds]
    for k, regime, seed in tqdm(runs, desc="segmenters", unit="model", disable=not progress):
        table[regime][k].append(regime_score(cfg, k, regime, seed)["score"])
    return table


def guidance_sweep(cfg: config.Config, k: int) -> list[dict[str, float]]:
    """For each guidance scale: the faithfulness of images generated for ``sweep_masks`` new masks, and their
    diversity (the mean absolute difference between two images generated for the same mask from other noise)."""
    model, _ = trained_mask_ddpm(cfg, k)
    masks = images_and_masks(cfg, "new masks")[1][:cfg.sweep_masks]
    rows = []
    for w in cfg.guidance_sweep:
        first, second = (sample(cfg, model, len(masks), masks=masks, guidance_scale=w, seed=seed) for seed in (0, 1))
        rows.append({"guidance_scale": w, "faithfulness": faithfulness(cfg, first, masks),
                     "diversity": (first - second).abs().mean().item()})
    return rows
