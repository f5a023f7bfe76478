"""Fixtures shared by the test files."""

import pytest
import torch

from cvcourse.recipes import judge


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
    monkeypatch.setattr(judge, "RECIPE", judge.JudgeRecipe(width=4, steps=2, batch_size=16, lr=1e-3, train_size=64,
                                                           test_size=32))
    monkeypatch.setattr(judge, "MIN_ACCURACY", 0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
