"""Results keyed by their configuration: train or draw once per machine, load afterwards.

``cached(name, config, make)`` stores the dict that ``make()`` builds at ``<root>/<name>-<key>.pt``, where
``key`` hashes the configuration; ``cached_model`` does the same for a trained model's weights. A missing,
damaged or stale entry (another configuration, an older format, weights that no longer fit the model) is
built again, with one printed line saying why. Entries are written atomically, so an interrupted write never
leaves a broken entry behind. The cache lives in ``~/.cache/cvcourse``; set ``$CVCOURSE_CACHE`` to move it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvcourse.checkpoint import CheckpointError

CACHE_ENV = "CVCOURSE_CACHE"
CACHE_FORMAT = "cvcourse-cache-v1"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def cache_root() -> Path:
    """The cache folder: ``$CVCOURSE_CACHE`` if set, else ``~/.cache/cvcourse``."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "cvcourse"


def _canonical_json(config: Mapping) -> str:
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (a dict of settings), got {type(config).__name__}.")
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"config must hold only JSON values (str, int, float, bool, None, lists, dicts with str "
                        f"keys): {error}. Convert the offending value, e.g. a Path with str(path).") from error


def config_key(config: Mapping) -> str:
    """A short stable hash of ``config``: the first 12 hex digits of the sha256 of its sorted-keys JSON."""
    return hashlib.sha256(_canonical_json(config).encode()).hexdigest()[:12]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A short hash of the tensors' shapes, dtypes and values: put it in a config that depends on data."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor_digest expects tensors, got {type(tensor).__name__}.")
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def _entry_path(name: str, config: Mapping, root: str | os.PathLike | None) -> Path:
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(f"cache name {name!r} must be letters, digits, '.', '_' or '-' (a file name), "
                         "e.g. 'quality-glyphs'.")
    return Path(root if root is not None else cache_root()) / f"{name}-{config_key(config)}.pt"


def _check_storable(value: Any, where: str) -> None:
    """Raise TypeError unless ``value`` loads back with ``torch.load(weights_only=True)``."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_storable(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}; cached dicts need str keys.")
            _check_storable(item, f"{where}[{key!r}]")
    else:
        raise TypeError(f"{where} is a {type(value).__name__}, which the cache cannot store safely. Cache only "
                        "tensors, numbers, strings and lists/dicts of them (torch.from_numpy for arrays).")


def _write_atomically(entry: dict, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        torch.save(entry, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _read_entry(path: Path, name: str, canonical: str, fits: Callable[[dict], None] | None) -> tuple[Any, str]:
    """``(payload, "")`` for a usable entry, else ``(None, why it cannot be used)``."""
    if not path.is_file():
        return None, "no cached entry yet"
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged or unsafe files
        return None, f"the entry is damaged ({type(error).__name__})"
    if not isinstance(entry, dict) or not {"format", "name", "config", "payload"} <= set(entry):
        return None, "the entry is damaged (not a cache entry)"
    if entry["format"] != CACHE_FORMAT:
        return None, f"the entry has format {entry['format']!r}, not {CACHE_FORMAT!r}"
    if entry["name"] != name or _canonical_json(entry["config"]) != canonical:
        return None, "the entry was written for another configuration"
    if fits is not None:
        try:
            fits(entry["payload"])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            return None, f"the entry is stale ({(str(error).splitlines() or [type(error).__name__])[0]})"
    return entry["payload"], ""


def cached(name: str, config: Mapping, make: Callable[[], dict], *, rebuild: bool = False,
           root: str | os.PathLike | None = None, fits: Callable[[dict], None] | None = None) -> dict:
    """The dict ``make()`` builds for ``config``, from ``<root>/<name>-<key>.pt`` when it is there.

    ``config`` holds everything the result depends on (JSON values); ``make`` returns tensors, numbers,
    strings and lists/dicts of them. The entry also stores ``name``, ``config`` and the cache format; one that
    is missing, damaged, written for another config or format, or rejected by ``fits(payload)`` (which raises
    to reject it), is built again. ``rebuild=True`` always builds.
    """
    path = _entry_path(name, config, root)
    canonical = _canonical_json(config)
    if rebuild:
        reason = "rebuild=True"
    else:
        payload, reason = _read_entry(path, name, canonical, fits)
        if not reason:
            return payload
    print(f"cache: building {path.name} in {path.parent}: {reason}.")
    payload = make()
    if not isinstance(payload, dict):
        raise TypeError(f"make() for cache entry {name!r} must return a dict, got {type(payload).__name__}.")
    _check_storable(payload, "make()")
    _write_atomically({"format": CACHE_FORMAT, "name": name, "config": json.loads(canonical),
                       "payload": payload}, path)
    return payload


def cached_model(name: str, config: Mapping, build: Callable[[], nn.Module],
                 train: Callable[[nn.Module, Path], Mapping | None], *, rebuild: bool = False,
                 root: str | os.PathLike | None = None) -> tuple[nn.Module, dict]:
    """``build()`` a model and load its cached weights, or ``train(model, checkpoint_dir)`` it and cache them.

    ``config`` holds everything the weights depend on. Returns the model (eval mode, on the CPU) and the info
    dict ``train`` returned. ``checkpoint_dir`` is ``<name>-<key>.checkpoints/`` next to the entry: pass it to
    ``Trainer(..., checkpoint_dir=...)`` and call ``fit(..., resume=True)``, so that an interrupted training
    continues where it stopped. It is removed once the entry is written; ``rebuild=True`` and checkpoints that
    do not fit (an older model) start from scratch instead. ``Trainer.fit`` returns normally after Ctrl+C, so
    ``train`` must raise when the training did not finish (e.g. ``KeyboardInterrupt`` if ``trainer.step <
    steps``): nothing is cached then. Cached weights that do not fit the model (its architecture changed) count
    as stale, and the model is trained again.
    """
    model = build()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build() for cache entry {name!r} must return a torch.nn.Module, got {type(model).__name__}.")
    initial_state = copy.deepcopy(model.state_dict())
    checkpoint_dir = _entry_path(name, config, root).with_suffix(".checkpoints")

    def fits(payload: dict) -> None:
        try:
            model.load_state_dict(payload["state_dict"])
        except (KeyError, RuntimeError, TypeError):
            model.load_state_dict(initial_state)  # a failed load may have copied some tensors: start afresh
            raise

    def make() -> dict:
        if rebuild:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)  # a rebuild starts from scratch, not from a checkpoint
        try:
            info = train(model, checkpoint_dir)
        except CheckpointError as error:  # a checkpoint left by an older model or a damaged file
            print(f"cache: cannot resume from {checkpoint_dir.name} ({type(error).__name__}: the checkpoints do not "
                  "fit the model); training from the start.")
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            model.load_state_dict(initial_state)
            info = train(model, checkpoint_dir)
        state_dict = {key: value.detach().cpu() for key, value in model.state_dict().items()}
        return {"state_dict": state_dict, "info": dict(info) if info is not None else {}}

    payload = cached(name, config, make, rebuild=rebuild, root=root, fits=fits)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    model.load_state_dict(payload["state_dict"])
    return model.cpu().eval(), payload["info"]
