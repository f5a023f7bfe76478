"""How well a method's anomaly maps find the defects of a test split: image AUROC, pixel AUROC and PRO.

The image score is the map's maximum (:func:`cvcourse.anomaly.image_scores`). Image AUROC asks "is this image
defective?", pixel AUROC "is this pixel?", counting pixels, so large defects weigh most; PRO (Bergmann et al.,
IJCV 2021) averages over defect regions, so a thin scratch counts as much as a wide stain.
"""

from __future__ import annotations

import torch

from cvcourse.anomaly.reconstruction import image_scores
from cvcourse.data.inspection import AnomalySplit
from cvcourse.metrics import auroc, pixel_auroc, pro_score


def _check(maps: torch.Tensor, split: AnomalySplit) -> None:
    if maps.ndim != 3 or maps.shape[0] != len(split) or maps.shape[-2:] != split.images.shape[-2:]:
        raise ValueError(f"maps must be (N, H, W) = ({len(split)}, {split.images.shape[-2]}, "
                         f"{split.images.shape[-1]}) for this split, got {tuple(maps.shape)}.")


def _masks(split: AnomalySplit) -> torch.Tensor | None:
    """The split's masks as (N, H, W), or None (then the metrics say that pixel metrics need masks)."""
    return None if split.masks is None else split.masks[:, 0]


def per_defect_auroc(maps: torch.Tensor, split: AnomalySplit) -> dict[str, float]:
    """Image AUROC of the normal test images against each defect kind alone."""
    _check(maps, split)
    scores = image_scores(maps)
    normal = [i for i, name in enumerate(split.defects) if name == "good"]
    result = {}
    for defect in sorted(set(split.defects) - {"good"}):
        defective = [i for i, name in enumerate(split.defects) if name == defect]
        result[defect] = auroc(scores[normal + defective], torch.tensor([0] * len(normal) + [1] * len(defective)))
    return result


def evaluate(maps: torch.Tensor, split: AnomalySplit, *, pixels: bool = True) -> dict[str, float]:
    """``image_auroc``, and with ``pixels`` ``pixel_auroc`` and ``pro`` (these need the split's masks), and the image
    AUROC of each defect kind as ``image_auroc_<defect>``."""
    _check(maps, split)
    result = {"image_auroc": auroc(image_scores(maps), split.labels)}
    if pixels:
        result["pixel_auroc"] = pixel_auroc(maps, _masks(split))
        result["pro"] = pro_score(maps, _masks(split))
    result.update({f"image_auroc_{defect}": value for defect, value in per_defect_auroc(maps, split).items()})
    return result
