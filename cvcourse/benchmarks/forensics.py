"""Chapter 10's headline experiments: detecting the course's generated glyphs, on the chapter's data and detectors.

- ``fake.dire_glyphs``: DIRE fed to the small CNN, held-out real glyphs against the pixel DDPM's samples (AUROC);
  every detector's cross-generator table (AUROC and accuracy at the training generator's threshold) in the details;
- ``fake.format_shortcut``: the pixel CNN trained with real images as JPEG and generated ones as PNG, the generated
  ones from an ideal generator (new glyphs from the real images' renderer): its AUROC with the same difference, and
  its drop once both sides are JPEG; the CNN trained on equalised formats, and the same with the DDPM, beside it;
- ``fake.inpainting_localisation``: the U-Net that marks RePaint-edited pixels, pixel AUROC (its best input).

The generators come from the cache (or are trained first), as in the chapter.
"""

from __future__ import annotations

from cvcourse.benchmarks import Entry, Outcome
from cvcourse.config import Config
from cvcourse.recipes import ch10_edits
from cvcourse.recipes import ch10_generated_image_detection as ch10


def dire_glyphs(cfg: Config) -> Outcome:
    sets = ch10.detection_sets(cfg)
    cross = ch10.cross_generator(cfg, sets, *ch10.reconstruction_models(cfg))
    details = {f"{detector} {trained_on}->{tested_on} {figure}": result[figure]
               for detector, rows in cross.items() for trained_on, columns in rows.items()
               for tested_on, result in columns.items() for figure in ("auroc", "accuracy")}
    return Outcome(cross["dire_cnn"]["ddpm"]["ddpm"]["auroc"],
                   details={"dire_steps": cfg.dire_steps, "per_class_train": cfg.train_size,
                            "per_class_test": cfg.test_size, **details})


def format_shortcut(cfg: Config) -> Outcome:
    shortcut = ch10.format_shortcut(cfg, ch10.detection_sets(cfg))
    ideal = shortcut["ideal"]
    details = {f"{generator} {figure}": value for generator, figures in shortcut.items()
               for figure, value in figures.items()}
    return Outcome(ideal["same_difference"], measured={"shortcut_drop": ideal["same_difference"] - ideal["both_jpeg"]},
                   details={"jpeg_quality": cfg.jpeg_quality, **details})


def inpainting_localisation(cfg: Config) -> Outcome:
    ddpm, _ = ch10.reconstruction_models(cfg)
    _, edited, masks = ch10_edits.edited_images(cfg, ddpm)
    localisation = ch10_edits.localise_edits(cfg, edited, masks, ddpm)
    details = {f"{kind} {figure}": result[figure] for kind, result in localisation.items()
               for figure in ("pixel_auroc", "iou")}
    return Outcome(max(result["pixel_auroc"] for result in localisation.values()),
                   details={"edit_steps": cfg.edit_steps, "edit_resample": cfg.edit_resample, **details})


ENTRIES = (
    Entry("fake.dire_glyphs", "DIRE-CNN AUROC, held-out real glyphs against the pixel DDPM's samples", ch10,
          "dire_cnn_auroc", dire_glyphs),
    Entry("fake.format_shortcut", "pixel-CNN AUROC with JPEG reals and PNG fakes in train and test", ch10,
          "shortcut_same_format_auroc", format_shortcut),
    Entry("fake.inpainting_localisation", "pixel AUROC of the edited region (RePaint edits), best localiser input",
          ch10, "edit_pixel_auroc", inpainting_localisation),
)
