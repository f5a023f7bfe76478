"""Fixtures shared by the test files."""

import pytest
import torch

from cvcourse import quality


@pytest.fixture(scope="module")
def one_thread():
    """Small convolutions run fastest on one thread, above all on a busy machine; the old count is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_world(tmp_path, monkeypatch):
    """A private cache, one thread, and a tiny judge recipe (the real one trains for a minute)."""
    monkeypatch.setenv("CVCOURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(quality, "TRAIN_SIZE", 64)
    monkeypatch.setattr(quality, "TEST_SIZE", 32)
    monkeypatch.setattr(quality, "GLYPH_RECIPE", {"width": 4, "steps": 2, "batch_size": 16, "lr": 1e-3, "seed": 0})
    monkeypatch.setattr(quality, "MIN_ACCURACY", 0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
