"""Profiles, one switch for size, and the typed settings every chapter's recipe is made of.

``CVCOURSE_PROFILE`` chooses how big every experiment is:

- ``smoke``: seconds per notebook, tiny models and data (what CI runs);
- ``cpu``: a laptop, minutes per chapter, results that show the method works;
- ``gpu``: Colab or better, larger models and data, about 15 minutes a chapter.

Unset, the profile is ``gpu`` when CUDA is available and ``cpu`` otherwise.

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
        if target is None:
            print(f"{name} = {value:.4g}: no target in the {self.profile} profile, not checked")
            return False
        if not target.met_by(value):
            raise AssertionError(f"{name} = {value:.4g} misses its target {target} in the {self.profile} profile "
                                 f"(the chapter's recipe holds the targets)")
        return True

    def __repr__(self) -> str:
        rows = [("profile", f"{self.profile}  (set {PROFILE_ENV}=smoke|cpu|gpu to change)"), ("device", self.device)]
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
    return Config(chapter=chapter, profile=name, device=pick_device(device),
                  settings=with_overrides(settings_type(), overrides.get(name, {})))
