"""Chapter 09, anomaly detection: the settings and targets, the inspection data, the cached autoencoder and
diffusion model, and the three methods measured on every category.

The ``cpu`` and ``smoke`` profiles run on the synthetic inspection set (``cvcourse.data.inspection``); the ``gpu``
profile runs on the MVTec AD categories in the data folder (``cvcourse.data.mvtec_ad``) and on the synthetic set
when none is there. One autoencoder and one class-conditional diffusion model learn every category's normal images
(the category is the diffusion model's label); the feature memory keeps one memory per category.

``CLAIMS`` and ``TIES`` are the comparisons the chapter states in its conclusion; the notebook's check cell and the
bench's ``anom.baselines`` entry assert them in the profiles they were measured in (``CLAIMS_CHECKED``) and report
them in the others.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cvcourse import config
from cvcourse.anomaly import (
    PatchMemory,
    autoencoder_maps,
    evaluate,
    partial_diffusion_maps,
    random_features,
    resnet_features,
)
from cvcourse.anomaly.noise import NOISES
from cvcourse.data import AnomalySplit, data_root, inspection_split, mvtec_ad
from cvcourse.data.inspection import CATEGORIES, KINDS
from cvcourse.diffusion.training import keep_ema, train_diffusion
from cvcourse.generative.training import train_vae
from cvcourse.models.autoencoder import KLAutoencoder
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.recipes.ch05_diffusion import DdpmRecipe, ddpm_unet, noise_schedule
from cvcourse.recipes.training import cached_training, require_finished, training_info
from cvcourse.seeding import seed_everything

CHAPTER = "09_anomaly_detection"
METHODS = ("autoencoder", "partial_diffusion", "feature_memory")
MVTEC_KINDS = {"grid": "regular texture", "carpet": "stochastic texture", "metal_nut": "object"}
# (category kind, better method, worse method, metric): what the chapter concludes from the cpu profile's run
CLAIMS = (
    ("stochastic texture", "partial_diffusion", "autoencoder", "image_auroc"),
    ("stochastic texture", "partial_diffusion", "autoencoder", "pixel_auroc"),
    ("stochastic texture", "feature_memory", "autoencoder", "pixel_auroc"),
    ("object", "partial_diffusion", "feature_memory", "image_auroc"),
)
TIES = (("regular texture", "image_auroc", 0.01),)  # (kind, metric, spread): every method within the spread
CLAIMS_CHECKED = ("cpu",)  # the profiles whose runs the claims were measured on; others report them


@dataclass(frozen=True)
class AutoencoderRecipe:
    """The reconstruction baseline: chapter 07's KL autoencoder (latents at 1/4 resolution) on every category."""

    version: int = 1
    latent_channels: int = 2
    width: int = 32
    beta: float = 1e-3
    batch_size: int = 64
    steps: int = 1000
    lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class Settings(config.Settings):
    data: str = "synthetic"  # or "mvtec": MVTec AD's categories from the data folder
    categories: tuple[str, ...] = CATEGORIES
    image_size: int = 32
    train_size: int = 400  # normal training images per category
    test_size: int = 100  # test images per category: two fifths normal, a fifth of each defect kind
    autoencoder: AutoencoderRecipe = AutoencoderRecipe()
    ddpm: DdpmRecipe = DdpmRecipe(image_size=32, train_size=400, width=32, steps=1500, lr=2e-3)
    t_lambda: int = 50  # partial diffusion's depth: noise to t_lambda, denoise back
    t_lambdas: tuple[int, ...] = (0, 5, 10, 25, 50, 100, 200, 400)  # the sweep
    ddim_steps: int = 100  # the DDIM grid over [0, T); partial diffusion visits the part below t_lambda
    draws: int = 2  # noise draws averaged per map
    blur_sigma: float = 1.0
    features: str = "random"  # or "resnet18": ImageNet-pretrained features, where the weights can be loaded
    feature_width: int = 64
    memory_size: int = 20_000
    checkpoint_every: int = 500
    targets: Mapping[str, str] = field(default_factory=lambda: {
        "partial_image_auroc": ">= 0.90", "partial_pixel_auroc": ">= 0.85"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(train_size=48, test_size=20, autoencoder=dict(width=8, steps=60),
                  ddpm=dict(train_size=48, width=16, steps=60, lr=1e-3, ema_decay=0.9), t_lambdas=(0, 10, 50, 200),
                  ddim_steps=50, draws=1, memory_size=2000, checkpoint_every=30, targets={}),
    # not yet run on a GPU: the cpu profile's floors until it has been
    "gpu": dict(data="mvtec", categories=tuple(MVTEC_KINDS), image_size=64, train_size=1000, test_size=200,
                autoencoder=dict(latent_channels=4, width=64, steps=4000),
                ddpm=dict(image_size=64, train_size=1000, width=64, batch_size=64, steps=10_000, lr=1e-3),
                draws=4, features="resnet18", memory_size=50_000, checkpoint_every=1000),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 09's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)


def mvtec_root() -> Path:
    return data_root() / "mvtec_ad"


def categories(cfg: config.Config) -> dict[str, str]:
    """The categories the chapter runs on and their kinds: ``cfg.categories`` of the synthetic set, or (``data =
    "mvtec"``) those of MVTec AD found in the data folder; with none there, the synthetic set's, said aloud."""
    if cfg.data == "synthetic":
        return {name: KINDS[name] for name in cfg.categories}
    if cfg.data != "mvtec":
        raise ValueError(f"unknown data {cfg.data!r}; choose 'synthetic' or 'mvtec'.")
    found = {name: MVTEC_KINDS.get(name, "MVTec AD") for name in cfg.categories
             if (mvtec_root() / name / "train" / "good").is_dir()}
    if not found:
        print(f"No MVTec AD category of {', '.join(cfg.categories)} in {mvtec_root()}: running on the synthetic "
              "inspection set instead (see data/README.md for MVTec AD).")
        return dict(KINDS)
    return found


def splits(cfg: config.Config, category: str) -> tuple[AnomalySplit, AnomalySplit]:
    """The normal training images and the test split of ``category`` (synthetic or MVTec AD, by its name)."""
    if category in KINDS:
        return (inspection_split(category, "train", cfg.train_size, image_size=cfg.image_size),
                inspection_split(category, "test", cfg.test_size, image_size=cfg.image_size))
    return mvtec_ad(category, "train", cfg.image_size, mvtec_root()), mvtec_ad(category, "test", cfg.image_size,
                                                                              mvtec_root())


def _training_images(cfg: config.Config, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    images = [splits(cfg, name)[0].images for name in names]
    labels = torch.cat([torch.full((len(batch),), index) for index, batch in enumerate(images)])
    return torch.cat(images), labels


def trained_autoencoder(cfg: config.Config, *, rebuild: bool = False,
                        progress: bool = False) -> tuple[KLAutoencoder, dict[str, Any]]:
    """The autoencoder trained on the normal images of every category, cached; and its info."""
    recipe, names = cfg.autoencoder, list(categories(cfg))

    images, _ = _training_images(cfg, names)  # build() needs their mean even when the weights come from the cache

    def build() -> KLAutoencoder:
        seed_everything(recipe.seed)
        return KLAutoencoder(recipe.latent_channels, channels=3, width=recipe.width, mean_pixel=images.mean().item())

    def train(model: KLAutoencoder, checkpoint_dir: Path) -> dict[str, Any]:
        trainer = train_vae(model, images, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                            beta=recipe.beta, seed=recipe.seed, device=cfg.device, checkpoint_dir=checkpoint_dir,
                            checkpoint_every=cfg.checkpoint_every, resume=True, progress=progress)
        require_finished(trainer, recipe.steps)
        return training_info(trainer)

    return cached_training("inspection-autoencoder", recipe, build, train, rebuild=rebuild, **_data_key(cfg, names))


def trained_ddpm(cfg: config.Config, *, rebuild: bool = False,
                 progress: bool = False) -> tuple[DiffusionUNet, dict[str, Any]]:
    """The diffusion model of normal images, conditioned on the category (its index in ``categories(cfg)``),
    trained with ``cfg.ddpm`` and cached (EMA weights); and its info."""
    recipe, names = cfg.ddpm, list(categories(cfg))
    schedule = noise_schedule(recipe)

    def build() -> DiffusionUNet:
        seed_everything(recipe.seed)
        return ddpm_unet(recipe, len(names), in_channels=3)

    def train(model: DiffusionUNet, checkpoint_dir: Path) -> dict[str, Any]:
        images, labels = _training_images(cfg, names)
        trainer = train_diffusion(model, schedule, images, labels, steps=recipe.steps, batch_size=recipe.batch_size,
                                  lr=recipe.lr, ema_decay=recipe.ema_decay, conditional=True,
                                  min_snr_gamma=recipe.min_snr_gamma, seed=recipe.seed, device=cfg.device,
                                  checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.checkpoint_every, resume=True,
                                  progress=progress)
        require_finished(trainer, recipe.steps)
        keep_ema(model, trainer)
        return training_info(trainer)

    return cached_training("inspection-ddpm", recipe, build, train, rebuild=rebuild, **_data_key(cfg, names))


def _data_key(cfg: config.Config, names: list[str]) -> dict[str, Any]:
    return {"data": cfg.data, "categories": names, "image_size": cfg.image_size, "train_size": cfg.train_size}


def feature_extractor(cfg: config.Config) -> torch.nn.Module:
    """The feature memory's network: ``cfg.features`` ("random" or "resnet18"); ResNet-18 falls back to random
    features, said aloud, where its weights cannot be loaded (no internet and no copy in torch's cache)."""
    if cfg.features == "resnet18":
        try:
            return resnet_features().to(cfg.device)
        except (OSError, RuntimeError) as error:
            print(f"ImageNet weights for ResNet-18 could not be loaded ({type(error).__name__}): the feature memory "
                  "uses random features instead.")
    elif cfg.features != "random":
        raise ValueError(f"unknown features {cfg.features!r}; choose 'random' or 'resnet18'.")
    return random_features(width=cfg.feature_width).to(cfg.device)


def partial_maps(cfg: config.Config, ddpm: DiffusionUNet, test: AnomalySplit, category_index: int, t_lambda: int,
                 *, noise: str = "gaussian", progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cvcourse.anomaly.partial_diffusion_maps` of ``test`` with the chapter's settings (DDIM grid, draws,
    smoothing), the category as the model's label."""
    return partial_diffusion_maps(ddpm, noise_schedule(cfg.ddpm), test.images, t_lambda, steps=cfg.ddim_steps,
                                  draws=cfg.draws, labels=torch.full((len(test),), category_index),
                                  blur_sigma=cfg.blur_sigma, noise=noise, progress=progress)


def run_methods(cfg: config.Config, autoencoder: KLAutoencoder | None, ddpm: DiffusionUNet | None, *,
                methods: tuple[str, ...] = METHODS, progress: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
    """``methods`` (default: all three) on every category, partial diffusion at ``cfg.t_lambda``:
    ``results[category][method]`` holds its ``maps``, its ``reconstructions`` (None for the memory), its metrics
    (:func:`cvcourse.anomaly.evaluate`) and ``seconds_per_image``. A model a chosen method does not use may be None."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}.")
    features = feature_extractor(cfg) if "feature_memory" in methods else None
    results = {}
    for index, name in enumerate(categories(cfg)):
        train, test = splits(cfg, name)
        runs = {
            "autoencoder": lambda: autoencoder_maps(autoencoder, test.images, blur_sigma=cfg.blur_sigma),
            "partial_diffusion": lambda: partial_maps(cfg, ddpm, test, index, cfg.t_lambda, progress=progress),
            "feature_memory": lambda: (PatchMemory(features, memory_size=cfg.memory_size, blur_sigma=cfg.blur_sigma)
                                       .fit(train.images).maps(test.images), None),
        }
        results[name] = {}
        for method in methods:
            started = time.perf_counter()
            maps, reconstructions = runs[method]()
            seconds = time.perf_counter() - started
            results[name][method] = {"maps": maps, "reconstructions": reconstructions,
                                     "seconds_per_image": seconds / len(test), **evaluate(maps, test)}
    return results


def t_lambda_sweep(cfg: config.Config, ddpm: DiffusionUNet, *, progress: bool = False) -> dict[str, dict[int, dict]]:
    """Partial diffusion at every ``cfg.t_lambdas`` on every category: ``sweep[category][t_lambda]`` = metrics."""
    sweep = {}
    for index, name in enumerate(categories(cfg)):
        test = splits(cfg, name)[1]
        sweep[name] = {t_lambda: evaluate(partial_maps(cfg, ddpm, test, index, t_lambda, progress=progress)[0], test)
                       for t_lambda in cfg.t_lambdas}
    return sweep


def noise_comparison(cfg: config.Config, ddpm: DiffusionUNet,
                     sweep: Mapping[str, Mapping[int, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Partial diffusion at ``cfg.t_lambda`` with each noise of the jump (Gaussian, and coarse pyramid noise in the
    role of AnoDDPM's simplex noise) on every category: ``comparison[category][noise]`` = metrics. The Gaussian
    figures come from ``sweep`` (:func:`t_lambda_sweep`) where it holds ``cfg.t_lambda``: the same maps, same seed."""
    comparison = {}
    for index, name in enumerate(categories(cfg)):
        test = splits(cfg, name)[1]
        comparison[name] = {}
        for noise in NOISES:
            known = sweep[name].get(cfg.t_lambda) if noise == "gaussian" else None
            comparison[name][noise] = known or evaluate(
                partial_maps(cfg, ddpm, test, index, cfg.t_lambda, noise=noise)[0], test)
    return comparison


def claims_hold(cfg: config.Config, results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, bool]:
    """Each of ``CLAIMS`` and ``TIES`` on every category of its kind: ``{"<category>: <better> > <worse> (<metric>)":
    holds, "<category>: all methods within <spread> (<metric>)": holds}``."""
    kinds = categories(cfg)
    claims = {f"{name}: {better} > {worse} ({metric})": results[name][better][metric] > results[name][worse][metric]
              for kind, better, worse, metric in CLAIMS for name in results if kinds[name] == kind}
    for kind, metric, spread in TIES:
        for name in (name for name in results if kinds[name] == kind):
            values = [outcome[metric] for outcome in results[name].values()]
            claims[f"{name}: all methods within {spread:g} ({metric})"] = max(values) - min(values) <= spread
    return claims


def headline(cfg: config.Config, results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, float]:
    """Partial diffusion's weakest image and pixel AUROC over the regular-texture and object categories (the
    floors of the chapter); the stochastic texture is reported beside them, not held to them."""
    kinds = categories(cfg)
    held = [name for name in results if kinds[name] in ("regular texture", "object")] or list(results)
    return {"partial_image_auroc": min(results[name]["partial_diffusion"]["image_auroc"] for name in held),
            "partial_pixel_auroc": min(results[name]["partial_diffusion"]["pixel_auroc"] for name in held)}
