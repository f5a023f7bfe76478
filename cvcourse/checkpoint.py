"""Reading training checkpoints safely, on any machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "cvcourse-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or does not fit the model being trained."""


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


