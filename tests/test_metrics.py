"""Ranking metrics against scikit-learn, and PRO on hand-made anomaly maps."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cvcourse.metrics import auroc, pixel_auroc, pro_score


def random_scores(seed: int, n: int = 500, ties: bool = False):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.rand(n, generator=generator) < 0.3
    scores = torch.randn(n, generator=generator) + labels  # anomalies score higher, with overlap
    return (scores * 2).round() if ties else scores, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_auroc_matches_sklearn(seed, ties):
    scores, labels = random_scores(seed, ties=ties)
    assert not ties or len(scores.unique()) < 20
    assert math.isclose(auroc(scores, labels), roc_auc_score(labels, scores), rel_tol=1e-12)


def test_auroc_integer_scores_with_many_ties_and_other_inputs():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 1000)
    scores = rng.integers(0, 4, 1000) + labels  # five distinct values
    expected = roc_auc_score(labels, scores)
    assert math.isclose(auroc(torch.from_numpy(scores), torch.from_numpy(labels)), expected, rel_tol=1e-12)
    assert math.isclose(auroc(scores.tolist(), labels.astype(float).tolist()), expected, rel_tol=1e-12)
    assert math.isclose(auroc(scores, labels.astype(bool)), expected, rel_tol=1e-12)


def test_auroc_perfect_reversed_and_constant():
    labels = torch.tensor([0, 0, 1, 0, 1, 1])
    perfect = torch.tensor([0.1, 0.2, 0.9, 0.3, 0.8, 0.7])
    assert auroc(perfect, labels) == 1.0 and auroc(-perfect, labels) == 0.0
    assert auroc(torch.full((6,), 0.4), labels) == 0.5
    assert auroc(torch.tensor([0.0, 1.0]), torch.tensor([True, False])) == 0.0


def test_auroc_counts_a_tie_between_classes_as_one_half():
    # the anomaly at 0.5 beats one normal and ties with another: (1 + 0.5) / 2
    assert auroc([0.2, 0.5, 0.5], [0, 0, 1]) == 0.75


@pytest.mark.parametrize("scores, labels, match", [
    ([0.1, 0.2, 0.3], [0, 1], r"scores has 3 values but labels has 2; give one label per score"),
    ([[0.1, 0.2], [0.3, 0.4]], [[0, 1], [1, 0]], r"scores and labels must be 1-D, got shapes \(2, 2\) and \(2, 2\)"),
    ([0.1, 0.2, 0.3], [0, 1, 2], r"labels must be 0/1 or bool \(1 = anomalous\), got the values \[0, 1, 2\]"),
    ([0.1, 0.2, 0.3], [-1, 1, 1], r"labels must be 0/1 or bool"),
    ([0.1, 0.2, 0.3], [1, 1, 1], r"AUROC needs both normal and anomalous examples: the labels hold 0 normal"),
    ([0.1, 0.2], [False, False], r"AUROC needs both normal and anomalous examples"),
    ([], [], r"AUROC needs both normal and anomalous examples"),
    ([0.1, float("nan"), 0.3], [0, 1, 1], r"scores hold 1 NaN values, which have no rank"),
])
def test_auroc_bad_inputs(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        auroc(scores, labels)


def test_auroc_on_two_million_values_matches_sklearn():
    scores, labels = random_scores(4, n=2_000_000)
    scores = scores.half().float()  # about 30 000 distinct values: many ties as well
    assert math.isclose(auroc(scores, labels), roc_auc_score(labels.numpy(), scores.numpy()), rel_tol=1e-10)


def random_maps(seed: int, shape=(4, 1, 24, 24)):
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(shape, dtype=torch.bool)
    masks[0, ..., 3:9, 4:12] = True
    masks[1, ..., 15:20, 2:5] = True
    masks[1, ..., 0:4, 18:24] = True
    maps = torch.rand(shape, generator=generator) + 0.6 * masks
    return maps, masks


@pytest.mark.parametrize("channel", [True, False])
def test_pixel_auroc_is_auroc_over_flattened_pixels(channel):
    maps, masks = random_maps(5)
    if not channel:
        maps, masks = maps[:, 0], masks[:, 0]
    expected = roc_auc_score(masks.flatten().numpy(), maps.flatten().numpy())
    assert math.isclose(pixel_auroc(maps, masks), expected, rel_tol=1e-12)


def test_pixel_metrics_bad_inputs():
    maps, masks = random_maps(6)
    for metric in (pixel_auroc, pro_score):
        with pytest.raises(ValueError, match=r"pixel metrics need ground-truth masks: pass the bool masks"):
            metric(maps, None)
        with pytest.raises(ValueError, match=r"maps \(4, 1, 24, 24\) and masks \(4, 24, 24\) must have one shape"):
            metric(maps, masks[:, 0])
        with pytest.raises(ValueError, match=r"must be \(N, H, W\) or \(N, 1, H, W\), got \(4, 3, 8, 8\)"):
            metric(torch.rand(4, 3, 8, 8), torch.zeros(4, 3, 8, 8, dtype=torch.bool))


def test_pro_of_a_perfect_map_is_one():
    _, masks = random_maps(7)
    assert pro_score(masks.float(), masks) == pytest.approx(1.0)
    assert pro_score(masks.float() * 5 - 2, masks, max_fpr=0.05, thresholds=2) == pytest.approx(1.0)


def test_pro_averages_over_regions_not_pixels():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 2:4, 2:4] = True  # a region of 4 pixels, found
    masks[1, 6:10, 6:10] = True  # a region of 16 pixels, missed: it scores below every normal pixel
    maps = torch.full((2, 16, 16), 0.5)
    maps[0, 2:4, 2:4] = 1.0
    maps[1, 6:10, 6:10] = 0.0
    # PRO is 1/2 from FPR 0 to FPR 1 (the pixel share found would be 4/20)
    assert pro_score(maps, masks) == pytest.approx(0.5)
    # normal pixels tied with the missed region: from (FPR 0, PRO 1/2) straight to (1, 1), so 0.5 + 0.15 / 2
    maps[~masks] = 0.0
    assert pro_score(maps, masks) == pytest.approx(0.575)


def test_pro_regions_are_8_connected():
    masks = torch.zeros(1, 12, 12, dtype=torch.bool)
    masks[0, 0:2, 0:2] = True  # 4 pixels, found
    masks[0, 2:5, 2:5] = True  # 9 pixels touching the first at a corner, missed: one region with it
    maps = torch.full((1, 12, 12), 0.5)
    maps[0, 0:2, 0:2] = 1.0
    maps[0, 2:5, 2:5] = 0.0
    assert pro_score(maps, masks) == pytest.approx(4 / 13)


def test_pro_integrates_up_to_max_fpr():
    maps, masks = random_maps(8)
    scores = [pro_score(maps, masks, max_fpr=limit) for limit in (0.01, 0.1, 0.3, 1.0)]
    assert all(0 <= score <= 1 for score in scores)
    assert scores == sorted(scores), "a map that ranks anomalies higher gains as the FPR limit grows"


@pytest.mark.parametrize("seed", [9, 10, 11])
def test_pro_of_random_maps_lies_in_0_1(seed):
    _, masks = random_maps(seed)
    maps = torch.rand(masks.shape, generator=torch.Generator().manual_seed(seed))
    assert 0 <= pro_score(maps, masks) <= 1
    assert 0 <= pro_score(maps[:, 0], masks[:, 0], thresholds=7) <= 1


def test_pro_bad_inputs():
    maps, masks = random_maps(12)
    with pytest.raises(ValueError, match=r"PRO needs at least one anomalous region, but every mask is empty"):
        pro_score(maps, torch.zeros_like(masks))
    with pytest.raises(ValueError, match=r"PRO needs normal pixels"):
        pro_score(maps, torch.ones_like(masks))
    with pytest.raises(ValueError, match=r"max_fpr must be in \(0, 1\], got 0"):
        pro_score(maps, masks, max_fpr=0)
    with pytest.raises(ValueError, match=r"thresholds must be an integer >= 2, got 1"):
        pro_score(maps, masks, thresholds=1)
    maps[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"maps hold NaN values"):
        pro_score(maps, masks)
