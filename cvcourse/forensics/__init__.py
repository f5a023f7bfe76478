"""Detecting generated images (chapter 10): storage formats and degradations, DIRE, and scores to decisions.

``formats`` re-encodes images the way files and the web do (PNG, JPEG, resizing, noise); ``dire`` computes the
diffusion reconstruction error of Wang et al. 2023; ``scores`` turns a detector's scores into a threshold picked on
one generator and the accuracy it gives on another, beside the threshold-free AUROC; ``edits`` makes the regions
an edit replaces and scores a localiser.
"""

from cvcourse.forensics.dire import dire_maps, mean_scores
from cvcourse.forensics.edits import edit_masks, localisation_scores
from cvcourse.forensics.formats import jpeg_round_trip, noisy, png_round_trip, resize_round_trip, to_uint8
from cvcourse.forensics.scores import accuracy_at, best_threshold, detection_report, labelled

__all__ = [
    "accuracy_at",
    "best_threshold",
    "detection_report",
    "dire_maps",
    "edit_masks",
    "jpeg_round_trip",
    "labelled",
    "localisation_scores",
    "mean_scores",
    "noisy",
    "png_round_trip",
    "resize_round_trip",
    "to_uint8",
]
