"""Writing training checkpoints atomically, finding them, and reading them safely on any machine."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "cvcourse-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or does not fit the model being trained."""


def run_signature(models: dict[str, Any], optimizers: dict[str, Any], schedulers: dict[str, Any],
                  ema_decay: float | None) -> dict[str, Any]:
    """What identifies a training configuration: each model's tensors and their shapes, each optimizer's type and
    hyperparameters, the schedulers' types and the EMA's decay. Two runs with the same signature can resume each
    other's checkpoints; runs with different ones must not."""
    hyperparameters = ("lr", "betas", "momentum", "weight_decay", "eps", "nesterov")
    return {
        "models": {name: {key: list(value.shape) for key, value in model.state_dict().items()}
                   for name, model in models.items()},
        "optimizers": {name: [type(optimizer).__name__,
                              {key: repr(optimizer.defaults[key]) for key in hyperparameters
                               if key in optimizer.defaults}]
                       for name, optimizer in optimizers.items()},
        "schedulers": {name: type(scheduler).__name__ for name, scheduler in schedulers.items()},
        "ema_decay": ema_decay,
    }


def signature_difference(ours: dict[str, Any], theirs: dict[str, Any] | None) -> str:
    """What differs between two run signatures, in words ("" when nothing does)."""
    if theirs is None:
        return "it was written without a run signature (an older version of the course)"
    names = {"models": "the models' tensors", "optimizers": "the optimizers or their hyperparameters",
             "schedulers": "the learning-rate schedules", "ema_decay": "the EMA decay"}
    differing = [words for key, words in names.items() if ours.get(key) != theirs.get(key)]
    return f"{', '.join(differing)} differ" if differing else ""


def claim_checkpoint_dir(directory: str | os.PathLike, signature: dict[str, Any], *, resume: bool) -> Path | None:
    """Prepare ``directory`` for a run of configuration ``signature``: the latest checkpoint to resume from
    (``resume=True``; None when there is none), or a folder cleared of an earlier run of the same configuration
    (``resume=False``, one line printed). Checkpoints of another configuration are refused either way, never
    resumed from nor mixed with."""
    found = checkpoint_paths(directory)
    if not found:
        return None
    difference = signature_difference(signature, read_checkpoint(found[-1]).get("signature"))
    if difference:
        raise CheckpointError(
            f"{directory} holds checkpoints of another training configuration ({difference}; the latest is "
            f"{found[-1].name}). Pass another checkpoint_dir to this run, or delete those step_*.pt files to start "
            "afresh there.")
    if resume:
        return found[-1]
    for path in found:
        path.unlink()
    print(f"Starting afresh in {directory}: removed {len(found)} checkpoint(s) of an earlier run of the same "
          "configuration (fit(..., resume=True) continues a run instead).")
    return None


def scheduler_state(scheduler: Any) -> dict[str, Any]:
    """``scheduler.state_dict()`` without functions: torch < 2.4 keeps OneCycleLR's ``anneal_func`` (a bound method)
    in it, which ``torch.load(weights_only=True)`` refuses; the scheduler rebuilt on resume has the same one."""
    return {key: value for key, value in scheduler.state_dict().items() if not callable(value)}


def write_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it: an interrupted write leaves no broken
    file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def checkpoint_paths(directory: str | os.PathLike) -> list[Path]:
    """The ``step_*.pt`` checkpoints in ``directory``, oldest (lowest step) first; [] when there is none."""
    directory = Path(directory)
    if not directory.exists():
        return []
    return sorted(directory.glob("step_*.pt"), key=lambda p: int(re.findall(r"\d+", p.stem)[0]))


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints in ``directory``."""
    for old in checkpoint_paths(directory)[:-keep]:
        old.unlink()


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint safely: ``weights_only=True`` and ``map_location="cpu"``.

    Loading to the CPU first means a checkpoint written on a GPU opens on any machine; the
    ``load_state_dict`` calls then copy each tensor to wherever the model lives.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Check the path, or train first (fit with checkpoint_dir).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged or unsafe files
        reason = (str(error).splitlines() or ["no details"])[0]
        raise CheckpointError(
            f"Cannot read checkpoint {path}: {type(error).__name__}: {reason}. The file is "
            "damaged (for example an interrupted copy) or was not written by cvcourse.train. Delete it, then "
            "resume from an older checkpoint or train again."
        ) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a cvcourse training checkpoint (format {CHECKPOINT_FORMAT!r} expected).")
    return state


