"""Chapter 10, part two: deepfakes as edits. Real glyphs with one region repainted by the chapter-05 diffusion model
(RePaint, Lugmayr et al. 2022), and a segmentation U-Net (chapter 02) that marks the repainted pixels.

The settings are chapter 10's (``CHAPTER``, ``Settings``, ``OVERRIDES`` and ``load`` are the main recipe's, so
either module loads them): ``edit_train`` and ``edit_test`` edits, ``edit_steps`` reverse steps each taken
``edit_resample`` times, and the ``localiser`` recipe. Edits and localisers are cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cvcourse import config
from cvcourse.cache import cached, cached_model, tensor_digest
from cvcourse.config import settings_key
from cvcourse.data.glyphs import glyph_tensors
from cvcourse.diffusion import repaint, to_diffusion_range, to_image_range
from cvcourse.forensics import edit_masks, localisation_scores, png_round_trip
from cvcourse.models.unet import UNet
from cvcourse.recipes import ch05_diffusion as ch05
from cvcourse.recipes.ch10_generated_image_detection import CHAPTER, OVERRIDES, Settings, dire, load
from cvcourse.recipes.training import require_finished
from cvcourse.segmentation.losses import bce_dice_loss
from cvcourse.segmentation.training import segment, train_segmentation
from cvcourse.seeding import seed_everything

__all__ = ["CHAPTER", "LOCALISER_INPUTS", "OVERRIDES", "Settings", "edited_images", "load", "localise_edits",
           "localiser_inputs", "trained_localiser"]

EDIT_SEED = 3  # the glyphs that are edited: neither the generators' training glyphs nor the detectors' real ones


def edited_images(cfg: config.Config, ddpm: torch.nn.Module, *,
                  progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real glyphs with a region replaced by RePaint inpainting with the chapter-05 model: the originals, the
    edited images (stored as PNG) and the edit masks (N, 1, S, S), ``edit_train + edit_test`` of each; cached."""
    count, size = cfg.edit_train + cfg.edit_test, cfg.ddpm.image_size
    originals = png_round_trip(glyph_tensors(count, size, seed=EDIT_SEED)[0])
    masks = edit_masks(count, size, torch.Generator().manual_seed(EDIT_SEED))
    key = dict(model=tensor_digest(*ddpm.state_dict().values()), images=tensor_digest(originals, masks),
               steps=cfg.edit_steps, resample=cfg.edit_resample)

    def make() -> dict[str, torch.Tensor]:
        x0 = to_diffusion_range(originals).to(cfg.device)
        edited = repaint(ddpm.to(cfg.device).eval(), ch05.noise_schedule(cfg.ddpm).to(cfg.device), x0,
                         ~masks.to(cfg.device), steps=cfg.edit_steps, resample=cfg.edit_resample,
                         generator=torch.Generator().manual_seed(EDIT_SEED), progress=progress)
        return {"edited": png_round_trip(to_image_range(edited).cpu())}

    return originals, cached("glyph-edits", key, make)["edited"], masks


LOCALISER_INPUTS = ("image", "image_and_dire")


def localiser_inputs(cfg: config.Config, kind: str, images: torch.Tensor, ddpm: torch.nn.Module) -> torch.Tensor:
    """The localiser's input: the edited image alone, or with its DIRE image as a second channel."""
    if kind == "image":
        return images
    if kind == "image_and_dire":
        return torch.cat([images, dire(cfg, ddpm, images)], dim=1)
    raise ValueError(f"unknown localiser input {kind!r}; choose from {', '.join(LOCALISER_INPUTS)}.")


def trained_localiser(cfg: config.Config, inputs: torch.Tensor, masks: torch.Tensor, *,
                      progress: bool = False) -> UNet:
    """A U-Net (chapter 02) trained with BCE + Dice to mark the edited pixels (``masks`` True), cached."""
    recipe = cfg.localiser

    def build() -> UNet:
        seed_everything(recipe.seed)
        return UNet(inputs.shape[1], 1, depth=recipe.depth, base_width=recipe.width)

    def train(model: UNet, checkpoint_dir: Path) -> dict[str, Any]:
        trainer = train_segmentation(model, inputs, masks[:, 0].long(), loss_fn=bce_dice_loss, steps=recipe.steps,
                                     batch_size=recipe.batch_size, lr=recipe.lr, device=cfg.device, seed=recipe.seed,
                                     checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.checkpoint_every, resume=True,
                                     progress=progress, live_plot=False)
        require_finished(trainer, recipe.steps)
        return {}

    key = {**settings_key(recipe), "data": tensor_digest(inputs, masks)}
    return cached_model("edit-localiser", key, build, train)[0]


def localise_edits(cfg: config.Config, edited: torch.Tensor, masks: torch.Tensor, ddpm: torch.nn.Module, *,
                   progress: bool = False) -> dict[str, dict[str, Any]]:
    """``results[input] = {"pixel_auroc", "iou", "probabilities"}`` of a localiser trained on the first
    ``edit_train`` edits and tested on the rest, for each of ``LOCALISER_INPUTS``."""
    train, test = slice(0, cfg.edit_train), slice(cfg.edit_train, cfg.edit_train + cfg.edit_test)
    results = {}
    for kind in LOCALISER_INPUTS:
        inputs = localiser_inputs(cfg, kind, edited, ddpm)
        model = trained_localiser(cfg, inputs[train], masks[train], progress=progress)
        probabilities = segment(model, inputs[test], output="probabilities")[:, 0]
        results[kind] = {**localisation_scores(probabilities, masks[test, 0]), "probabilities": probabilities}
    return results
