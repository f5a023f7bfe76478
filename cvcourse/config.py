"""Profiles, one switch for size, and every chapter's settings in one place.

``CVCOURSE_PROFILE`` chooses how big every experiment is:

- ``smoke``: seconds per notebook, tiny models and data (what CI runs);
- ``cpu``: a laptop, minutes per chapter, results that show the method works;
- ``gpu``: Colab or better, larger models and data, about 15 minutes a chapter.

Unset, the profile is ``gpu`` when CUDA is available and ``cpu`` otherwise. A notebook calls
``cfg = config.load("00_tour")`` once and reads its sizes from ``cfg``; it never edits its own source
to shrink.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from cvcourse.device import pick_device

PROFILES = ("smoke", "cpu", "gpu")
PROFILE_ENV = "CVCOURSE_PROFILE"

# chapter -> profile -> settings. Every size a chapter or a bench entry uses is declared here.
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "00_tour": {
        "smoke": dict(image_size=32, train_size=1024, test_size=256, batch_size=64, steps=200,
                      checkpoint_every=100, width=16, lr=1e-2, seed=0, target_accuracy=0.70),
        "cpu": dict(image_size=32, train_size=4000, test_size=1000, batch_size=64, steps=600,
                    checkpoint_every=200, width=32, lr=3e-3, seed=0, target_accuracy=0.95),
        "gpu": dict(image_size=32, train_size=20000, test_size=2000, batch_size=256, steps=1500,
                    checkpoint_every=500, width=64, lr=3e-3, seed=0, target_accuracy=0.98),
    },
    "core.trainer_overhead": {
        "smoke": dict(image_size=32, train_size=512, batch_size=64, steps=16, repeats=2, width=16),
        "cpu": dict(image_size=32, train_size=2048, batch_size=64, steps=64, repeats=5, width=32),
        "gpu": dict(image_size=32, train_size=8192, batch_size=256, steps=200, repeats=5, width=64),
    },
}


def resolve_profile(profile: str | None = None) -> str:
    """The profile to use: the argument, else ``$CVCOURSE_PROFILE``, else gpu with CUDA, else cpu."""
    name = profile or os.environ.get(PROFILE_ENV, "").strip()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    name = name.lower()
    if name not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}. Valid profiles: {', '.join(PROFILES)}. "
            f"Set {PROFILE_ENV} to one of them (or unset it to choose by hardware)."
        )
    return name


@dataclass(frozen=True)
class Config:
    """A chapter's resolved settings: ``cfg.batch_size``, ``cfg.device``, ``cfg.profile`` ..."""

    chapter: str
    profile: str
    device: torch.device
    settings: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        settings = self.__dict__.get("settings", {})
        if name in settings:
            return settings[name]
        raise AttributeError(
            f"Chapter {self.chapter!r} has no setting {name!r}; it has: {', '.join(sorted(settings))}. "
            "Settings are declared in cvcourse/config.py (SETTINGS)."
        )

    def __repr__(self) -> str:
        rows = {"profile": f"{self.profile}  (set {PROFILE_ENV}=smoke|cpu|gpu to change)",
                "device": self.device, **self.settings}
        lines = [f"Config for chapter {self.chapter!r}"]
        lines += [f"  {key:<16} {value}" for key, value in rows.items()]
        return "\n".join(lines)


def load(chapter: str, profile: str | None = None, device: str | torch.device | None = None) -> Config:
    """Resolve ``chapter``'s settings for ``profile`` (see :func:`resolve_profile`) on ``device``."""
    if chapter not in SETTINGS:
        raise KeyError(f"Unknown chapter {chapter!r}. Known chapters: {', '.join(SETTINGS)}.")
    name = resolve_profile(profile)
    return Config(chapter=chapter, profile=name, device=pick_device(device),
                  settings=dict(SETTINGS[chapter][name]))
