"""The glyph judge: trained once with its recipe, cached, and refused while too weak."""

import numpy as np
import pytest

from cvcourse.data.glyphs import glyph_tensors
from cvcourse.generative.metrics import ImageQuality
from cvcourse.models import SmallCNN
from cvcourse.recipes import judge


def test_glyph_judge_on_a_small_recipe(tmp_path, monkeypatch, capsys):
    """The whole recipe, made tiny: drawn and trained once, cached, and refused while too weak."""
    monkeypatch.setenv("CVCOURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(judge, "RECIPE", judge.JudgeRecipe(width=4, steps=2, batch_size=32, lr=1e-3, train_size=200,
                                                           test_size=100))
    with pytest.raises(RuntimeError, match="held-out accuracy"):
        judge.glyph_judge(image_size=16)
    assert "building glyph-judge" in capsys.readouterr().out
    monkeypatch.setattr(judge, "MIN_ACCURACY", 0.0)
    trained = judge.glyph_judge(image_size=16)
    assert capsys.readouterr().out == ""  # everything came from the cache
    assert 0.0 <= trained.accuracy < 0.98 and isinstance(trained.classifier, SmallCNN)
    assert not trained.classifier.training
    train_images, _ = glyph_tensors(200, image_size=16, seed=0)
    fresh = ImageQuality(trained.classifier, train_images)  # the cached reference statistics are the training glyphs'
    np.testing.assert_allclose(trained.reference_covariance, fresh.reference_covariance, rtol=1e-6, atol=1e-9)
    held_out, _ = glyph_tensors(100, image_size=16, seed=1)
    assert trained.fcd(held_out) == pytest.approx(fresh.fcd(held_out), rel=1e-6)
