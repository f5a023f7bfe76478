"""Profiles, one switch for size, and the typed settings every chapter's recipe is made of.

``CVCOURSE_PROFILE`` chooses how big every experiment is:

- ``smoke``: seconds per notebook, tiny models and data (what CI runs);
- ``cpu``: a laptop, minutes per chapter, results that show the method works;
- ``gpu``: Colab or better, larger models and data, about 15 minutes a chapter.

Unset, the profile is ``gpu`` when CUDA is available and ``cpu`` otherwise.

``CVCOURSE_CHECK_CAP=N`` is for one check only, ``make test-gpu-profile``: it runs a profile's code paths (models,
batch sizes, data) on any machine by capping every training and sampling budget (:func:`capped`); results are then
not checked.

Each chapter's recipe (``cvcourse.recipes.ch02_unet`` ...) declares its settings as a frozen dataclass whose
defaults are the ``cpu`` profile's, and the few values the ``smoke`` and ``gpu`` profiles change. A notebook
calls ``cfg = recipe.load()`` once, reads its sizes from ``cfg`` and ends with ``cfg.check(name, value)``,
which compares a measured value with the profile's target; the bench judges its entries with the same
targets. A notebook never edits its own source to shrink.
"""

from __future__ import annotations

import dataclasses
import operator
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cvcourse.device import pick_device

PROFILES = ("smoke", "cpu", "gpu")
PROFILE_ENV = "CVCOURSE_PROFILE"
CAP_ENV = "CVCOURSE_CHECK_CAP"
CAPPED_SAMPLES = 100  # ten of each class, as the sample grids show them
COMPARISONS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


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
class Target:
    """A floor or a ceiling for a measured value, written like ``">= 0.95"`` or ``"<= 600"``."""

    comparison: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Target:
        match = re.fullmatch(r"\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*", str(text))
        if not match:
            raise ValueError(f"A target reads like '>= 0.95' or '<= 600', got {text!r}.")
        return cls(match[1], float(match[2]))

    def met_by(self, value: float) -> bool:
        return bool(COMPARISONS[self.comparison](float(value), self.threshold))

    def __str__(self) -> str:
        return f"{self.comparison} {self.threshold:g}"


@dataclass(frozen=True)
class Settings:
    """The base of every chapter's settings: ``targets`` maps a measured quantity to its target.

    A quantity without a target in a profile is measured and reported, not checked (the smoke profile trains
    too briefly for some results to mean anything).
    """

    targets: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for text in self.targets.values():
            Target.parse(text)


def with_overrides(settings: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of the dataclass ``settings`` with ``overrides`` applied; a dict for a nested dataclass overrides
    some of its fields, any other value replaces the field whole (``targets`` included)."""
    names = {item.name for item in dataclasses.fields(settings)}
    changes = {}
    for name, value in overrides.items():
        if name not in names:
            raise KeyError(f"{type(settings).__qualname__} has no setting {name!r}; it has: "
                           f"{', '.join(sorted(names))}.")
        current = getattr(settings, name)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = with_overrides(current, value)
        changes[name] = value
    return dataclasses.replace(settings, **changes)


def capped(settings: Any, cap: int) -> Any:
    """``settings`` with every step count (``*steps``), interval (``*_every``) and timing repeat (``*repeats``) at
    most ``cap``, every sample count (``*_count``) at most 100 and every data size (``*train_size``,
    ``*test_size``, ``*_train``, ``*_test``) at most twice the largest batch size (or 64), so that a profile's code
    runs in minutes. Models, batch sizes and image
    sizes stay as they are, and so does a diffusion schedule's length (``*timesteps``): they are what a check of the
    profile has to exercise."""
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"{CAP_ENV} must be a positive integer (steps per training), got {cap!r}.")
    batch = max([value for name, value in _rows(settings) if name.endswith("batch_size")] + [32])

    def limit(name: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return value
        if name.endswith(("steps", "_every", "repeats")) and not name.endswith("timesteps"):
            return min(value, cap)
        if name.endswith("_count"):
            return min(value, CAPPED_SAMPLES)
        if name.endswith(("train_size", "test_size", "_train", "_test")):
            return min(value, 2 * batch)
        return value

    changes = {}
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        changes[item.name] = (capped(value, cap) if dataclasses.is_dataclass(value) else limit(item.name, value))
    return dataclasses.replace(settings, **changes)


def settings_key(settings: Any) -> dict[str, Any]:
    """The dataclass ``settings`` as plain JSON values, targets left out: what a cached result depends on."""
    values = dataclasses.asdict(settings)
    values.pop("targets", None)
    return _plain(values)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _rows(settings: Any, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        if item.name == "targets":
            continue
        if dataclasses.is_dataclass(value):
            rows += _rows(value, f"{prefix}{item.name}.")
        else:
            rows.append((f"{prefix}{item.name}", value))
    return rows


@dataclass(frozen=True)
class Config:
    """A chapter's settings resolved for a profile and a device: ``cfg.batch_size``, ``cfg.gan.steps``,
    ``cfg.device``, ``cfg.profile``; ``cfg.check(name, value)`` asserts a result against its target."""

    chapter: str
    profile: str
    device: torch.device
    settings: Settings
    cap: int | None = None  # CVCOURSE_CHECK_CAP: budgets capped, results not checked

    def __getattr__(self, name: str) -> Any:
        settings = self.__dict__.get("settings")
        if settings is not None and hasattr(settings, name):
            return getattr(settings, name)
        known = ", ".join(item.name for item in dataclasses.fields(settings)) if settings is not None else ""
        raise AttributeError(f"Chapter {self.chapter!r} has no setting {name!r}; it has: {known}. Settings are "
                             f"declared in the chapter's recipe (cvcourse/recipes/).")

    @property
    def targets(self) -> dict[str, Target]:
        return {name: Target.parse(text) for name, text in self.settings.targets.items()}

    def check(self, name: str, value: float) -> bool:
        """Assert that ``value`` meets the target ``name`` of this profile; True when it was checked.

        A quantity with no target in this profile is printed as skipped and returns False.
        """
        value = float(value)
        target = self.targets.get(name)
        if self.cap is not None:
            print(f"{name} = {value:.4g}: not checked, every budget is capped at {self.cap} steps ({CAP_ENV})")
            return False
        if target is None:
            print(f"{name} = {value:.4g}: no target in the {self.profile} profile, not checked")
            return False
        if not target.met_by(value):
            raise AssertionError(f"{name} = {value:.4g} misses its target {target} in the {self.profile} profile "
                                 f"(the chapter's recipe holds the targets)")
        return True

    def __repr__(self) -> str:
        rows = [("profile", f"{self.profile}  (set {PROFILE_ENV}=smoke|cpu|gpu to change)"), ("device", self.device)]
        if self.cap is not None:
            rows.append(("capped", f"at {self.cap} steps by {CAP_ENV}: a check of the code, not of the results"))
        rows += _rows(self.settings)
        targets = ", ".join(f"{name} {target}" for name, target in self.targets.items())
        rows.append(("targets", targets or "none in this profile"))
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name:<{width}}  {value}" for name, value in rows]
        return "\n".join([f"Settings of chapter {self.chapter}"] + lines)


def load(chapter: str, settings_type: type[Settings], overrides: Mapping[str, Mapping[str, Any]],
         profile: str | None = None, device: str | torch.device | None = None) -> Config:
    """``settings_type``'s defaults (the cpu profile) with ``overrides[profile]`` applied, on ``device``.

    ``profile`` is resolved by :func:`resolve_profile`; each chapter's recipe wraps this in its own ``load``.
    """
    name = resolve_profile(profile)
    unknown = set(overrides) - set(PROFILES)
    if unknown:
        raise KeyError(f"Overrides for unknown profiles {sorted(unknown)}; profiles are {', '.join(PROFILES)}.")
    settings = with_overrides(settings_type(), overrides.get(name, {}))
    cap = os.environ.get(CAP_ENV, "").strip()
    if cap:
        if not cap.isdigit():
            raise ValueError(f"{CAP_ENV} must be a positive integer (steps per training), got {cap!r}; unset it to "
                             "run the chapters in full.")
        settings = capped(settings, int(cap))
    return Config(chapter=chapter, profile=name, device=pick_device(device), settings=settings,
                  cap=int(cap) if cap else None)
