"""Ranking metrics: how well scores separate two classes, whatever threshold is picked later.

``auroc`` scores anomaly detectors (1 = anomalous) and detectors of generated images (1 = generated) alike;
``pixel_auroc`` and ``pro_score`` score anomaly maps against ground-truth masks, as in MVTec AD (Bergmann et
al., IJCV 2021). ``pixel_auroc`` counts pixels, so large defects dominate it; PRO averages over defect regions,
so a small scratch counts as much as a large stain.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch

NO_MASKS = ("pixel metrics need ground-truth masks: pass the bool masks of the test images (True on defects, all "
            "False for normal images), e.g. mvtec_ad(category, 'test').masks")


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The area under the ROC curve: the probability that a random positive scores above a random negative.

    Computed as the Mann-Whitney U statistic over ``n1 * n0`` (Hanley & McNeil 1982), with average ranks for
    tied scores, so a tie counts one half. ``scores`` is 1-D (higher = more anomalous / more likely generated);
    ``labels`` 0/1 or bool of the same length. One sort and exact integer sums: ten million scores take a few seconds.
    """
    scores = torch.as_tensor(scores)
    labels = torch.as_tensor(labels, device=scores.device)
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D, got shapes {tuple(scores.shape)} and "
                         f"{tuple(labels.shape)}; flatten them first (pixel_auroc does it for maps and masks)")
    if len(scores) != len(labels):
        raise ValueError(f"scores has {len(scores)} values but labels has {len(labels)}; give one label per score")
    if labels.dtype != torch.bool:
        if ((labels != 0) & (labels != 1)).any():
            raise ValueError(f"labels must be 0/1 or bool (1 = anomalous), got the values "
                             f"{labels.unique()[:10].tolist()}; threshold or map them to 0/1 first")
        labels = labels != 0
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError(f"AUROC needs both normal and anomalous examples: the labels hold {negatives} normal (0) "
                         f"and {positives} anomalous (1) ones")
    nans = int(scores.isnan().sum())
    if nans:
        raise ValueError(f"scores hold {nans} NaN values, which have no rank; check the model's output "
                         "(a division by zero, a log of zero?)")
    ordered, order = scores.sort()
    _, tie_counts = torch.unique_consecutive(ordered, return_counts=True)
    del ordered  # ten million scores make every array here tens of megabytes: free them early
    ends = tie_counts.cumsum(0)  # the 1-based rank of each group of tied scores' last member
    positives_so_far = labels[order].cumsum(0)[ends - 1]
    del order
    group_positives = torch.diff(positives_so_far, prepend=positives_so_far.new_zeros(1))
    # a group's average rank is (2 * end - count + 1) / 2: twice the positives' rank sum is an exact integer
    twice_rank_sum = int((group_positives * (2 * ends - tie_counts + 1)).sum())
    return (twice_rank_sum - positives * (positives + 1)) / (2 * positives * negatives)


def _maps_and_masks(maps: torch.Tensor, masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``maps`` float and ``masks`` bool as (N, H, W), after checking that they match."""
    if masks is None:
        raise ValueError(NO_MASKS)
    maps, masks = torch.as_tensor(maps), torch.as_tensor(masks)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must have one shape, (N, H, W) or "
                         "(N, 1, H, W); resize the maps to the masks' size (e.g. F.interpolate, mode='bilinear')")
    if maps.ndim not in (3, 4) or (maps.ndim == 4 and maps.shape[1] != 1):
        raise ValueError(f"maps and masks must be (N, H, W) or (N, 1, H, W), got {tuple(maps.shape)}")
    return maps.reshape(len(maps), *maps.shape[-2:]), masks.reshape(len(masks), *masks.shape[-2:])


def pixel_auroc(maps: torch.Tensor, masks: torch.Tensor | None) -> float:
    """AUROC over every pixel of ``maps`` (N, H, W) or (N, 1, H, W) against ``masks`` of the same shape."""
    maps, masks = _maps_and_masks(maps, masks)
    return auroc(maps.flatten(), masks.flatten())


def pro_score(maps: torch.Tensor, masks: torch.Tensor | None, max_fpr: float = 0.3, thresholds: int = 200) -> float:
    """The normalised area under the per-region-overlap (PRO) curve up to ``max_fpr`` (Bergmann et al., IJCV 2021).

    The defect regions are the 8-connected components of each mask. At each of ``thresholds`` thresholds,
    evenly spaced between the maps' smallest and largest value, a pixel is flagged when its score is at
    least the threshold; PRO is the flagged share of a region's pixels, averaged over all regions, and the
    false positive rate the flagged share of all normal pixels. The curve, from (0, 0) to (1, 1), is
    integrated over FPR in [0, max_fpr] (interpolated at max_fpr) and divided by max_fpr, so that a perfect
    map scores 1.0.
    """
    maps, masks = _maps_and_masks(maps, masks)
    if not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}; MVTec AD reports PRO up to 0.3")
    if isinstance(thresholds, bool) or not isinstance(thresholds, int) or thresholds < 2:
        raise ValueError(f"thresholds must be an integer >= 2, got {thresholds!r}")
    maps = maps.detach().cpu().double()
    if maps.isnan().any():
        raise ValueError("maps hold NaN values, which no threshold flags; check the model's output")
    masks = masks.detach().cpu().numpy().astype(bool)
    within_images = np.zeros((3, 3, 3), dtype=bool)
    within_images[1] = True  # 8-connected in each image, never across images
    regions, count = scipy.ndimage.label(masks, structure=within_images)
    if count == 0:
        raise ValueError("PRO needs at least one anomalous region, but every mask is empty; pass the masks of a test "
                         "set that holds defective images")
    if masks.all():
        raise ValueError("PRO needs normal pixels to measure false positives, but every mask pixel is True")
    region_of_pixel = torch.from_numpy(regions[masks])
    weights = 1 / torch.bincount(region_of_pixel).double()[region_of_pixel]  # each region's pixels sum to one
    masks = torch.from_numpy(masks)
    anomalous, order = maps[masks].sort()
    normal = maps[~masks].sort().values
    weight_below = torch.cat([weights.new_zeros(1), weights[order].cumsum(0)])
    levels = torch.linspace(maps.min().item(), maps.max().item(), thresholds, dtype=torch.float64).flip(0)
    pro = (weight_below[-1] - weight_below[torch.searchsorted(anomalous, levels)]) / count
    fpr = (len(normal) - torch.searchsorted(normal, levels)).double() / len(normal)
    fpr = torch.cat([fpr.new_zeros(1), fpr, fpr.new_ones(1)])  # thresholds above and below every score
    pro = torch.cat([pro.new_zeros(1), pro, pro.new_ones(1)])
    inside = int((fpr <= max_fpr).sum())  # FPR grows as the threshold falls: the points up to max_fpr come first
    if inside < len(fpr):
        step = (max_fpr - fpr[inside - 1]) / (fpr[inside] - fpr[inside - 1])
        fpr = torch.cat([fpr[:inside], fpr.new_full((1,), max_fpr)])
        pro = torch.cat([pro[:inside], (pro[inside - 1] + step * (pro[inside] - pro[inside - 1])).reshape(1)])
    return torch.trapezoid(pro, fpr).item() / max_fpr
