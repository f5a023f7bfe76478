"""Chapter 00, setup and tour: the settings and targets of the tour's classifier, and of the trainer's overhead.

The tour trains ``SmallCNN`` on single synthetic shapes with :class:`cvcourse.train.Trainer`; the bench's
``core.trainer_overhead`` entry measures what that loop costs against a hand-written one (``cfg.overhead``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse import config

CHAPTER = "00_setup_and_tour"


@dataclass(frozen=True)
class OverheadSettings:
    """The same SmallCNN trained ``repeats`` times both ways, ``steps`` steps each."""

    image_size: int = 32
    train_size: int = 2048
    batch_size: int = 64
    steps: int = 32
    repeats: int = 15
    width: int = 32


@dataclass(frozen=True)
class Settings(config.Settings):
    image_size: int = 32
    train_size: int = 4000
    test_size: int = 1000
    batch_size: int = 64
    steps: int = 600
    checkpoint_every: int = 200
    width: int = 32
    lr: float = 3e-3
    seed: int = 0
    speed_repeats: int = 20  # timed calls per variant of the "faster steps" comparison
    compile_demo: bool = True  # torch.compile's first call compiles for tens of seconds on a CPU
    overhead: OverheadSettings = OverheadSettings()
    targets: Mapping[str, str] = field(default_factory=lambda: {"accuracy": ">= 0.95", "trainer_overhead": "<= 1.05"})


OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": dict(train_size=1024, test_size=256, steps=200, checkpoint_every=100, width=16, lr=1e-2,
                  speed_repeats=5, compile_demo=False,
                  overhead=dict(train_size=512, steps=16, repeats=2, width=16),
                  targets={"accuracy": ">= 0.70", "trainer_overhead": "<= 1.05"}),
    "gpu": dict(train_size=20_000, test_size=2000, batch_size=256, steps=1500, checkpoint_every=500, width=64,
                speed_repeats=50, overhead=dict(train_size=8192, batch_size=256, steps=200, repeats=9, width=64),
                targets={"accuracy": ">= 0.98", "trainer_overhead": "<= 1.05"}),
}


def load(profile: str | None = None, device: str | torch.device | None = None) -> config.Config:
    """Chapter 00's settings for ``profile`` (default: ``$CVCOURSE_PROFILE``, else by hardware) on ``device``."""
    return config.load(CHAPTER, Settings, OVERRIDES, profile, device)
