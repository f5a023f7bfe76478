"""cvcourse.forensics: storage formats, DIRE and thresholds, against PIL, brute force and exact cases."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from cvcourse.diffusion import NoiseSchedule
from cvcourse.forensics import (
    accuracy_at,
    best_threshold,
    detection_report,
    dire_maps,
    edit_masks,
    jpeg_round_trip,
    labelled,
    localisation_scores,
    mean_scores,
    noisy,
    png_round_trip,
    resize_round_trip,
    to_uint8,
)


def images(n=4, channels=1, size=16, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_png_round_trip_is_what_a_png_file_gives_back():
    batch = images()
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(batch)[0, 0].numpy()).save(buffer, format="PNG")
    from_file = torch.from_numpy(np.array(Image.open(buffer))).float() / 255
    assert torch.equal(png_round_trip(batch)[0, 0], from_file)
    assert torch.equal(png_round_trip(png_round_trip(batch)), png_round_trip(batch))  # lossless after rounding
    assert (png_round_trip(batch) - batch).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_what_a_jpeg_file_gives_back(channels):
    batch = images(channels=channels)
    restored = jpeg_round_trip(batch, quality=75)
    assert restored.shape == batch.shape and restored.dtype == torch.float32
    buffer = io.BytesIO()
    picture = to_uint8(batch)[1].permute(1, 2, 0).squeeze(-1).numpy()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=75)
    from_pil = torch.from_numpy(np.array(Image.open(buffer))).float() / 255
    from_pil = from_pil[None] if channels == 1 else from_pil.permute(2, 0, 1)
    assert torch.equal(restored[1], from_pil)
    assert (restored - png_round_trip(batch)).abs().mean() > 0.01  # random pixels do not survive JPEG
    assert (jpeg_round_trip(batch, 100) - batch).abs().mean() < (restored - batch).abs().mean()


def test_resize_and_noise():
    batch = images(size=28)
    resized = resize_round_trip(batch, 14)
    assert resized.shape == batch.shape and 0 <= resized.min() and resized.max() <= 1
    assert torch.allclose(resize_round_trip(torch.full((1, 1, 28, 28), 0.3), 14), torch.full((1, 1, 28, 28), 0.3))
    first = noisy(batch, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(first, noisy(batch, 0.05, torch.Generator().manual_seed(1)))
    assert 0 <= first.min() and first.max() <= 1 and torch.equal(noisy(batch, 0.0), batch)


@pytest.mark.parametrize("call, match", [
    (lambda: png_round_trip(torch.rand(1, 16, 16)), "batch"),
    (lambda: png_round_trip(torch.rand(1, 2, 16, 16)), "grey or RGB"),
    (lambda: jpeg_round_trip(torch.rand(1, 1, 8, 8) * 2 - 1), r"\[0, 1\]"),
    (lambda: jpeg_round_trip(torch.rand(1, 1, 8, 8), quality=0), "quality"),
    (lambda: resize_round_trip(torch.rand(1, 1, 8, 8), 0), "size"),
    (lambda: noisy(torch.rand(1, 1, 8, 8), -0.1), "sigma"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def brute_force_best_accuracy(scores, labels):
    return max(((scores >= threshold) == labels.bool()).double().mean().item()
               for threshold in list(scores.tolist()) + [scores.max().item() + 1])


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_reaches_the_best_accuracy(seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (40,), generator=generator)
    scores = (labels + torch.randn(40, generator=generator)).round(decimals=1)  # with ties
    threshold = best_threshold(scores, labels)
    assert accuracy_at(scores, labels, threshold) == pytest.approx(brute_force_best_accuracy(scores, labels))
    report = detection_report(scores, labels, threshold)
    assert report["auroc"] == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()))


def test_a_threshold_from_one_generator_can_fail_on_another_while_auroc_holds():
    labels = torch.tensor([0, 0, 1, 1])
    threshold = best_threshold(torch.tensor([0.1, 0.2, 0.8, 0.9]), labels)
    shifted = torch.tensor([0.0, 0.05, 0.3, 0.4])  # the other generator's fakes score lower, still above the reals
    report = detection_report(shifted, labels, threshold)
    assert report["auroc"] == 1.0 and report["accuracy"] == 0.5


def test_scores_check_their_labels():
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        best_threshold(torch.rand(3), torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="1-D of one length"):
        accuracy_at(torch.rand(3), torch.tensor([0, 1]), 0.5)


class NoNoise(torch.nn.Module):
    """Predicts zero noise: DDIM's inversion and sampling are then exact inverses, so DIRE is zero."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, labels=None):
        return torch.zeros_like(x) * self.anchor


class Shrinking(NoNoise):
    def forward(self, x, t, labels=None):
        return 0.3 * x


def test_dire_is_zero_when_the_round_trip_is_exact_and_positive_otherwise():
    schedule = NoiseSchedule.cosine(100)
    batch = images(3, size=8) * 0.8 + 0.1
    maps, reconstructions = dire_maps(NoNoise(), schedule, batch, steps=5)
    assert maps.shape == batch.shape and reconstructions.shape == batch.shape
    assert maps.max() < 1e-4
    maps, _ = dire_maps(Shrinking(), schedule, batch, steps=5)
    assert mean_scores(maps).shape == (3,) and (mean_scores(maps) > 1e-3).all()


def test_dire_checks_its_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dire_maps(NoNoise(), NoiseSchedule.cosine(100), images(size=8) * 2 - 1)
    with pytest.raises(ValueError, match="maps must be"):
        mean_scores(torch.rand(4))


def test_edit_masks_are_one_rectangle_inside_the_middle():
    masks = edit_masks(50, 28, torch.Generator().manual_seed(0))
    assert masks.shape == (50, 1, 28, 28) and masks.dtype == torch.bool
    rows, columns = masks.any(dim=3)[:, 0], masks.any(dim=2)[:, 0]
    assert (masks.sum((1, 2, 3)) == rows.sum(1) * columns.sum(1)).all()  # filled rectangles
    assert rows.sum(1).min() >= 7 and rows.sum(1).max() <= 14
    assert not masks[..., :7, :].any() and not masks[..., 21:, :].any()


def test_localisation_scores_and_labels():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, 1:3, 1:3] = True
    perfect = localisation_scores(masks.float() * 0.9, masks)
    assert perfect == {"pixel_auroc": 1.0, "iou": 1.0}
    half = masks.clone()
    half[:, 1:3, 2] = False
    assert localisation_scores(half.float(), masks)["iou"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one shape"):
        localisation_scores(torch.rand(2, 4, 4), masks.float())
    images, labels = labelled(torch.zeros(3, 1, 2, 2), torch.ones(2, 1, 2, 2))
    assert labels.tolist() == [0, 0, 0, 1, 1] and images[3:].eq(1).all()
