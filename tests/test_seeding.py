"""Seeding every generator, and carrying their states through a checkpoint."""

import os
import random

import numpy as np
import pytest
import torch

from cvcourse import seeding

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def draws() -> tuple:
    """One draw from every generator, including the cached Gaussians of python and numpy."""
    return (
        random.random(),
        random.gauss(0.0, 1.0),
        np.random.rand(3).tolist(),
        np.random.normal(size=1).tolist(),
        torch.rand(3).tolist(),
    )


def test_seed_everything_reproduces_python_numpy_and_torch_draws():
    seeding.seed_everything(123)
    first = draws()
    seeding.seed_everything(123)
    assert draws() == first
    seeding.seed_everything(124)
    assert draws() != first


def test_seed_everything_deterministic_sets_and_restores_flags(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        seeding.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        seeding.seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_seed_everything_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match=r"expected an int seed in \[0, 2\*\*32\).*seed=0"):
        seeding.seed_everything(seed)


def test_rng_state_survives_weights_only_checkpoint(tmp_path):
    seeding.seed_everything(7)
    draws()  # leave the generators mid-stream, with cached Gaussians
    torch.save({"rng": seeding.rng_state()}, tmp_path / "checkpoint.pt")
    expected = draws()
    draws()
    seeding.set_rng_state(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["rng"])
    assert draws() == expected


@pytest.mark.parametrize("bad", [{"python": None}, [1, 2], None])
def test_set_rng_state_rejects_other_objects(bad):
    with pytest.raises(ValueError, match=r"expected the dict returned by cvcourse.seeding.rng_state\(\)"):
        seeding.set_rng_state(bad)


@needs_cuda
def test_cuda_seeding_and_rng_state(tmp_path):
    seeding.seed_everything(5)
    first = torch.rand(4, device="cuda")
    seeding.seed_everything(5)
    assert torch.equal(torch.rand(4, device="cuda"), first)
    state = seeding.rng_state()
    assert len(state["cuda"]) == torch.cuda.device_count()
    torch.save(state, tmp_path / "rng.pt")
    expected = torch.rand(4, device="cuda")
    seeding.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(4, device="cuda"), expected)
