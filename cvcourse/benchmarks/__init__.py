"""The bench's entries: each chapter's headline experiment, run through its recipe and judged by its targets.

An entry names the recipe it loads and the target its headline value is judged against; its ``run(cfg)`` calls the
recipe and returns an :class:`Outcome`. ``cvcourse.bench`` collects the ``ENTRIES`` of every module listed in
``MODULES``, runs them and writes the results; nothing here imports the bench.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from cvcourse.config import Config

MODULES = ("core", "segmentation", "detection", "generative", "diffusion", "anomaly", "forensics", "generated_data",
           "diffusion_detection")


@dataclass
class Outcome:
    """What an experiment measured: its headline ``value``; ``measured`` figures, each judged against the recipe's
    target of the same name where the profile has one; ``checks`` that are comparisons rather than thresholds;
    and ``details`` reported as they are."""

    value: float
    measured: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """``run(cfg) -> Outcome`` with ``cfg = recipe.load(profile)``; ``target`` names the recipe target that judges
    the headline value (None: a baseline, reported without a target)."""

    name: str
    metric: str
    recipe: ModuleType
    target: str | None
    run: Callable[[Config], Outcome]
