"""Chapter 13: denoise, then detect, measured honestly.

Chapter 08's detector meets test scenes degraded at several strengths (Michaelis et al. 2019 do this to COCO):
Gaussian noise, and low light brightened by its known gain (``cvcourse.data.degradations``). Before it looks, the
images are restored by a classical filter tuned by PSNR on validation scenes (``cvcourse.filters``), by a direct
denoiser, or by a diffusion model of clean scenes used as a denoiser at the known noise level (SDEdit, Meng et al.
2022; DDRM, Kawar et al. 2022; ``cvcourse.diffusion.denoisers``). The baseline that needs no denoiser: the detector
fine-tuned on degraded images. Every method meets the same degraded test images (one noise draw per degradation)
and the same detector; :func:`restoration_table` reports mAP@0.5, mAP@[.5:.95] and seconds per image.

Both denoisers are the same U-Net trained on random crops of the train split's clean scenes (convolutional, it then
runs on whole scenes): the diffusion model on every timestep, the direct denoiser only on those whose noise levels
cover the degradations'. The models and the table are cached (a filter's tuning takes a second and is remembered
per process); no test scene is read to train or to tune.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2
from tqdm.auto import tqdm

from cvcourse import config
from cvcourse.cache import cached
from cvcourse.config import settings_key
from cvcourse.data import RandomDegradation, brighten, gaussian_noise, low_light, low_light_noise_std
from cvcourse.detection import evaluate_detections
from cvcourse.detection.training import detect, plain_target, train_detector
from cvcourse.diffusion.denoisers import denoise_images, timestep_window, window_schedule
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.diffusion.training import keep_ema, train_diffusion
from cvcourse.filters import gaussian_filter, median_filter, tune_filter
from cvcourse.models.detector import DenseDetector
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.recipes import ch08_object_detection as ch08
from cvcourse.recipes.training import cached_training, require_finished, training_info
from cvcourse.seeding import seed_everything

KINDS = ("gaussian", "low_light")
METHODS = ("none", "gaussian_filter", "median_filter", "direct", "diffusion", "finetuned")
CLASSICAL = {"gaussian_filter": (gaussian_filter, (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)),
             "median_filter": (median_filter, (1, 3, 5, 7))}  # each filter and the strengths it is tuned over


@dataclass(frozen=True)
class DenoiserRecipe:
    """The U-Net both denoisers are (residual blocks, 2x2 patches, no attention: it only looks near each pixel, so it
    runs on images larger than its crops) and how it trains: the cache key of both, with their steps."""

    crop_size: int = 32
    crops_per_scene: int = 4
    timesteps: int = 1000  # the cosine schedule's T
    width: int = 32
    depth: int = 2
    patch_size: int = 2
    batch_size: int = 32
    lr: float = 2e-3
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.995
    seed: int = 0


@dataclass(frozen=True)
class FinetuneRecipe:
    """Chapter 08's trained detector trained further on images degraded at random strengths."""

    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class RestorationRecipe:
    """The degraded test scenes, the denoisers and the fine-tuned detector of part 1 (defaults: the cpu profile).

    ``noise_stds`` are Gaussian noise's standard deviations on [0, 1] images; ``low_light_gains`` the low-light
    strengths, each leaving noise of standard deviation ``read_noise / gain`` once brightened. The models learn from
    the first ``train_size`` scenes of chapter 08's train split; the filters are tuned on ``tuning_size`` scenes of
    its val split; the test scenes are the first ``test_size`` of its test split. ``methods`` are those the table
    measures (``METHODS`` lists every one; the median filter, a second classical filter, is left out by default: each
    method costs a pass of the detector over every degraded test image).
    """

    test_size: int = 100
    methods: tuple[str, ...] = ("none", "gaussian_filter", "direct", "diffusion", "finetuned")
    noise_stds: tuple[float, ...] = (0.1, 0.3, 0.5)
    low_light_gains: tuple[float, ...] = (0.2, 0.1)
    read_noise: float = 0.03
    train_size: int = 1000
    tuning_size: int = 16
    denoiser: DenoiserRecipe = DenoiserRecipe()
    diffusion_steps: int = 2000
    direct_steps: int = 1000
    purify_steps: int = 4
    finetune: FinetuneRecipe = FinetuneRecipe()
    checkpoint_every: int = 250
    noise_seed: int = 0  # the noise of the degraded test and tuning scenes


def noise_schedule(cfg: config.Config) -> NoiseSchedule:
    """The scene diffusion model's schedule: cosine (Nichol & Dhariwal 2021), T = ``denoiser.timesteps``."""
    return NoiseSchedule.cosine(cfg.restoration.denoiser.timesteps)


def degradations(cfg: config.Config) -> list[tuple[str, float]]:
    """Every ``(kind, strength)`` of the table: the Gaussian noise stds, then the low-light gains."""
    recipe = cfg.restoration
    return [("gaussian", std) for std in recipe.noise_stds] + [("low_light", gain) for gain in recipe.low_light_gains]


def noise_std(cfg: config.Config, kind: str, strength: float) -> float:
    """The standard deviation (on [0, 1] images) of the noise a restoration removes: the std itself for Gaussian
    noise, ``read_noise / gain`` for low light once brightened."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {', '.join(KINDS)}.")
    return strength if kind == "gaussian" else low_light_noise_std(strength, cfg.restoration.read_noise)


def degrade(cfg: config.Config, kind: str, strength: float, images: torch.Tensor, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` as every method receives them: with Gaussian noise of std ``strength``, or in low light at gain
    ``strength`` and brightened by it again (dividing by a known gain is free; the noise is what is left)."""
    return _degrade(kind, strength, cfg.restoration.read_noise, images, generator)


def _degrade(kind: str, strength: float, read_noise: float, images: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
    if kind == "gaussian":
        return gaussian_noise(images, strength, generator=generator)
    if kind == "low_light":
        return brighten(low_light(images, strength, read_noise, generator=generator), strength)
    raise ValueError(f"unknown degradation {kind!r}; choose one of {', '.join(KINDS)}.")


def _draw(dataset: str, split: str, count: int,
          image_size: int) -> tuple[torch.Tensor, tuple[dict[str, torch.Tensor], ...]]:
    scenes = ch08.scenes(dataset, split, count, image_size)
    items = [scenes[index] for index in range(len(scenes))]
    images = torch.stack([image.as_subclass(torch.Tensor) for image, _ in items])
    return images, tuple(plain_target(target) for _, target in items)


_drawn = functools.lru_cache(maxsize=4)(_draw)  # the test and val scenes, drawn once per process


def clean_test_scenes(cfg: config.Config) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """The clean test images (N, 3, H, W) and their targets (boxes, labels): chapter 08's first ``test_size``."""
    images, targets = _drawn(cfg.dataset, "test", cfg.restoration.test_size, ch08.settings_for(cfg).image_size)
    return images, list(targets)


def degraded_test_scenes(cfg: config.Config, kind: str,
                         strength: float) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """The test images degraded by ``(kind, strength)`` (see :func:`degrade`; the same noise draw every time) and
    their targets."""
    images, targets = clean_test_scenes(cfg)
    generator = torch.Generator().manual_seed(cfg.restoration.noise_seed)
    return degrade(cfg, kind, strength, images, generator=generator), targets


@functools.lru_cache(maxsize=1)
def _crops(dataset: str, count: int, image_size: int, crop_size: int, per_scene: int, seed: int) -> torch.Tensor:
    images = _draw(dataset, "train", count, image_size)[0]
    corners = torch.randint(0, image_size - crop_size + 1, (len(images), per_scene, 2),
                            generator=torch.Generator().manual_seed(seed)).tolist()
    return torch.stack([image[:, top:top + crop_size, left:left + crop_size]
                        for image, scene_corners in zip(images, corners) for top, left in scene_corners])


def training_crops(cfg: config.Config) -> torch.Tensor:
    """``crops_per_scene`` random ``crop_size`` crops of each of the first ``train_size`` clean train scenes."""
    recipe = cfg.restoration.denoiser
    return _crops(cfg.dataset, cfg.restoration.train_size, ch08.settings_for(cfg).image_size, recipe.crop_size,
                  recipe.crops_per_scene, recipe.seed)


def _trained_denoiser(cfg: config.Config, name: str, schedule: NoiseSchedule, steps: int, *, progress: bool,
                      rebuild: bool, **variant: Any) -> tuple[DiffusionUNet, dict[str, Any]]:
    recipe = cfg.restoration.denoiser

    def build() -> DiffusionUNet:
        seed_everything(recipe.seed)
        return DiffusionUNet(3, base_width=recipe.width, depth=recipe.depth, block="residual", attention=False,
                             patch_size=recipe.patch_size, timesteps=schedule.T)

    def train(model: DiffusionUNet, checkpoint_dir: Path) -> dict[str, Any]:
        crops = training_crops(cfg)
        trainer = train_diffusion(model, schedule, crops, torch.zeros(len(crops), dtype=torch.long), steps=steps,
                                  batch_size=recipe.batch_size, lr=recipe.lr, ema_decay=recipe.ema_decay,
                                  min_snr_gamma=recipe.min_snr_gamma, seed=recipe.seed, device=cfg.device,
                                  checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.restoration.checkpoint_every,
                                  resume=True, progress=progress)
        require_finished(trainer, steps)
        keep_ema(model, trainer)
        return training_info(trainer)

    model, info = cached_training(name, recipe, build, train, rebuild=rebuild, steps=steps,
                                  train_size=cfg.restoration.train_size,
                                  image_size=ch08.settings_for(cfg).image_size, dataset=cfg.dataset, **variant)
    return model.to(cfg.device).eval(), info


def trained_scene_ddpm(cfg: config.Config, *, progress: bool = True,
                       rebuild: bool = False) -> tuple[DiffusionUNet, dict[str, Any]]:
    """The diffusion model of clean scenes (DDPM's loss on every timestep, EMA weights), cached; and its info."""
    return _trained_denoiser(cfg, "scene-ddpm", noise_schedule(cfg), cfg.restoration.diffusion_steps,
                             progress=progress, rebuild=rebuild)


def direct_noise_range(cfg: config.Config) -> tuple[float, float]:
    """The lowest and highest noise std (on [0, 1] images) of the degradations: what the direct denoiser learns."""
    stds = [noise_std(cfg, kind, strength) for kind, strength in degradations(cfg)]
    return min(stds), max(stds)


def direct_schedule(cfg: config.Config) -> NoiseSchedule:
    """The direct denoiser's timesteps: the scene schedule's window whose noise levels cover the degradations'."""
    low, high = direct_noise_range(cfg)
    return window_schedule(noise_schedule(cfg), *timestep_window(noise_schedule(cfg), 2 * low, 2 * high))


def trained_direct_denoiser(cfg: config.Config, *, progress: bool = True,
                            rebuild: bool = False) -> tuple[DiffusionUNet, dict[str, Any]]:
    """The direct denoiser, cached: the scene model's U-Net trained with the same loss (the MSE of its noise
    prediction) but only at the timesteps of :func:`direct_schedule`, and applied with one step, a single prediction
    of the clean image (see ``cvcourse.diffusion.denoisers``). Refuses other noise levels (:func:`restore`)."""
    return _trained_denoiser(cfg, "scene-direct-denoiser", direct_schedule(cfg), cfg.restoration.direct_steps,
                             progress=progress, rebuild=rebuild, noise_range=list(direct_noise_range(cfg)))


def noise_augmentation(cfg: config.Config) -> RandomDegradation:
    """The fine-tuning's augmentation: Gaussian noise up to the largest std, or low light down to the smallest gain."""
    recipe = cfg.restoration
    return RandomDegradation(max(recipe.noise_stds, default=0.0), min(recipe.low_light_gains, default=1.0),
                             recipe.read_noise)


def finetuned_detector(cfg: config.Config, *, progress: bool = True,
                       rebuild: bool = False) -> tuple[DenseDetector, dict[str, Any]]:
    """Chapter 08's trained detector (trained first if it is not cached) trained ``finetune.steps`` more on the first
    ``train_size`` train scenes flipped and degraded by :func:`noise_augmentation`, cached; and its info."""
    cfg08, recipe = ch08.settings_for(cfg), cfg.restoration.finetune
    augmentation = noise_augmentation(cfg)

    def train(model: DenseDetector, checkpoint_dir: Path) -> dict[str, Any]:
        model.load_state_dict(ch08.trained_detector(cfg08, progress=progress)[0].state_dict())
        scenes = ch08.scenes(cfg.dataset, "train", cfg.restoration.train_size, cfg08.image_size)
        trainer = train_detector(model, scenes, steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr,
                                 device=cfg.device, seed=recipe.seed,
                                 transforms=v2.Compose([v2.RandomHorizontalFlip(), augmentation]),
                                 checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.restoration.checkpoint_every,
                                 resume=True, progress=progress)
        require_finished(trainer, recipe.steps)
        return training_info(trainer)

    model, info = cached_training("noise-finetuned-detector", recipe, lambda: ch08.build_detector(cfg08), train,
                                  rebuild=rebuild, detector=ch08.detector_key(cfg08),
                                  train_size=cfg.restoration.train_size,
                                  augmentation=[augmentation.max_noise_std, augmentation.min_gain,
                                                augmentation.read_noise])
    return model.to(cfg.device).eval(), info


@functools.lru_cache(maxsize=64)
def _tuned(method: str, kind: str, strength: float, read_noise: float, dataset: str, tuning_size: int,
           image_size: int, seed: int) -> float:
    clean = _drawn(dataset, "val", tuning_size, image_size)[0]
    noisy = _degrade(kind, strength, read_noise, clean, torch.Generator().manual_seed(seed + 1))
    denoise, strengths = CLASSICAL[method]
    return tune_filter(denoise, strengths, noisy, clean)


def tuned_filter_strength(cfg: config.Config, method: str, kind: str, strength: float) -> float:
    """The classical filter's strength (a blur sigma, a median window) with the best PSNR on ``tuning_size`` val
    scenes degraded by ``(kind, strength)`` (another noise draw than the test scenes'); remembered per process."""
    if method not in CLASSICAL:
        raise ValueError(f"{method!r} is not a classical filter; choose one of {', '.join(CLASSICAL)}.")
    recipe = cfg.restoration
    return _tuned(method, kind, strength, recipe.read_noise, cfg.dataset, recipe.tuning_size,
                  ch08.settings_for(cfg).image_size, recipe.noise_seed)


def restore(cfg: config.Config, method: str, images: torch.Tensor, kind: str, strength: float, *,
            denoiser: DiffusionUNet | None = None) -> torch.Tensor:
    """``images`` degraded by ``(kind, strength)`` (as :func:`degrade` returns them) restored by ``method``, one of
    ``METHODS``: unchanged for ``"none"`` and ``"finetuned"`` (its detector copes instead), a tuned classical filter,
    or a denoiser at the known noise std: ``denoiser`` if given, else the cached one (trained first if it is not).
    The direct denoiser refuses a noise std outside the range it learned."""
    std = noise_std(cfg, kind, strength)
    if method in ("none", "finetuned"):
        return images
    if method in CLASSICAL:
        return CLASSICAL[method][0](images, tuned_filter_strength(cfg, method, kind, strength))
    if method == "direct":
        low, high = direct_noise_range(cfg)
        if not low <= std <= high:
            raise ValueError(f"the direct denoiser learned noise of std {low:g} to {high:g} (on [0, 1] images), the "
                             f"degradations of cfg.restoration; {kind} at {strength:g} leaves noise of std {std:.3g}. "
                             "Add that strength to noise_stds or low_light_gains and train it again, or restore with "
                             "method='diffusion', whose model learned every noise level.")
        model = denoiser if denoiser is not None else trained_direct_denoiser(cfg)[0]
        return denoise_images(model, direct_schedule(cfg), images, std, steps=1)
    if method == "diffusion":
        model = denoiser if denoiser is not None else trained_scene_ddpm(cfg)[0]
        return denoise_images(model, noise_schedule(cfg), images, std, steps=cfg.restoration.purify_steps)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")


def restoration_table(cfg: config.Config, *, progress: bool = True, rebuild: bool = False) -> list[dict[str, Any]]:
    """One row per degradation and method of ``cfg.restoration.methods`` (and for the clean test images, with the
    detector and the fine-tuned one): ``kind``, ``strength``, ``noise_std`` (what is left to remove), ``method``,
    ``map_50``, ``map`` and ``seconds_per_image`` (restoring and detecting), cached. Trains what is not cached yet."""
    cfg08 = ch08.settings_for(cfg)
    unknown = set(cfg.restoration.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)} in cfg.restoration.methods; choose from "
                         f"{', '.join(METHODS)}.")
    key = {**settings_key(cfg.restoration), "detector": ch08.detector_key(cfg08)}

    def make() -> dict[str, Any]:
        detector = ch08.trained_detector(cfg08, progress=progress)[0]
        methods = cfg.restoration.methods
        detectors = {"finetuned": finetuned_detector(cfg, progress=progress)[0]} if "finetuned" in methods else {}
        denoisers = {name: trained(cfg, progress=progress)[0] for name, trained in
                     (("direct", trained_direct_denoiser), ("diffusion", trained_scene_ddpm)) if name in methods}
        clean, targets = clean_test_scenes(cfg)

        def row(kind: str, strength: float, method: str, images: torch.Tensor) -> dict[str, Any]:
            if method in CLASSICAL:
                tuned_filter_strength(cfg, method, kind, strength)  # tuned before the clock starts
            started = time.perf_counter()
            restored = images if kind == "clean" else restore(cfg, method, images, kind, strength,
                                                              denoiser=denoisers.get(method))
            detections = detect(detectors.get(method, detector), restored)
            seconds = time.perf_counter() - started
            scores = evaluate_detections(detections, targets)
            return {"kind": kind, "strength": strength,
                    "noise_std": 0.0 if kind == "clean" else noise_std(cfg, kind, strength), "method": method,
                    "map_50": scores["map_50"], "map": scores["map"], "seconds_per_image": seconds / len(images)}

        rows = [row("clean", 0.0, method, clean) for method in ("none", "finetuned") if method in methods]
        runs = [(kind, strength, method) for kind, strength in degradations(cfg) for method in methods]
        for kind, strength, method in tqdm(runs, desc="restore and detect", disable=not progress):
            rows.append(row(kind, strength, method, degraded_test_scenes(cfg, kind, strength)[0]))
        return {"rows": rows}

    return cached("denoise-then-detect", key, make, rebuild=rebuild)["rows"]
