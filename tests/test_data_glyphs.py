"""Glyphs: the MNIST-like digits the course draws itself."""

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torchvision import tv_tensors

from cvcourse.data import Glyphs, glyphs, materialize
from cvcourse.data.glyphs import glyph_tensors


def test_items_are_grey_digits_in_the_unit_range():
    image, label = Glyphs(4, image_size=28, seed=0)[0]
    assert isinstance(image, tv_tensors.Image) and image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.5  # a bright digit on black
    assert label in range(10)
    assert Glyphs(1, image_size=32)[0][0].shape == (1, 32, 32)


def test_same_seed_same_items_other_seed_other_items():
    a, b, c = Glyphs(5, seed=1), Glyphs(5, seed=1), Glyphs(5, seed=2)
    assert all(torch.equal(a[i][0], b[i][0]) and a[i][1] == b[i][1] for i in range(5))
    assert not all(torch.equal(a[i][0], c[i][0]) for i in range(5))


def test_classes_are_balanced_and_learnable():
    train, test = Glyphs(1000, seed=0), Glyphs(300, seed=1)
    train_x = torch.stack([train[i][0].flatten() for i in range(len(train))]).numpy()
    train_y = [train[i][1] for i in range(len(train))]
    counts = torch.bincount(torch.tensor(train_y), minlength=10)
    assert counts.min() >= 60 and counts.max() <= 140
    test_x = torch.stack([test[i][0].flatten() for i in range(len(test))]).numpy()
    test_y = [test[i][1] for i in range(len(test))]
    accuracy = LogisticRegression(max_iter=300).fit(train_x, train_y).score(test_x, test_y)
    assert accuracy > 0.8  # a linear model on raw pixels already separates the digits well


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="image_size must be an integer >= 16"):
        Glyphs(10, image_size=8)
    with pytest.raises(IndexError, match="valid indices are 0..9"):
        Glyphs(10)[10]


def test_glyph_tensors_match_materialize_and_are_drawn_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CVCOURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(glyphs, "_usable_cpu_count", lambda: 2)  # draw with two workers even on a one-core runner
    images, labels = glyph_tensors(24, image_size=16, seed=3)
    assert "no cached entry yet" in capsys.readouterr().out
    expected_images, expected_labels = materialize(Glyphs(24, image_size=16, seed=3))  # drawn without workers
    assert images.dtype == torch.float32 and images.shape == (24, 1, 16, 16) and type(images) is torch.Tensor
    assert labels.dtype == torch.int64 and labels.shape == (24,)
    assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
    again, _ = glyph_tensors(24, image_size=16, seed=3)
    assert capsys.readouterr().out == "" and torch.equal(again, images)
    assert len(list(tmp_path.glob("glyphs-*.pt"))) == 1


def test_glyph_tensors_are_drawn_again_when_the_drawing_changes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CVCOURSE_CACHE", str(tmp_path))
    glyph_tensors(4, image_size=16)
    monkeypatch.setattr(glyphs, "ELASTIC_ALPHA", 2 * glyphs.ELASTIC_ALPHA)
    glyph_tensors(4, image_size=16)
    assert capsys.readouterr().out.count("no cached entry yet") == 2
    assert len(list(tmp_path.glob("glyphs-*.pt"))) == 2
