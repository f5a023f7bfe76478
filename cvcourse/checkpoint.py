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


