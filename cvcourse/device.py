"""Device, mixed precision and DataLoader defaults for every chapter.

Choose where to compute with :func:`pick_device`, decide on mixed precision with
:func:`amp_policy` and move batches with :func:`to_device`. ``python -m cvcourse.device --check``
prints the environment and checks that torchvision's compiled ops (``torchvision.ops.nms``) run on the
chosen device.

torchvision is imported only inside the functions that need it, so that ``--check`` can
explain a broken torch/torchvision pair instead of failing with a traceback at import time.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

try:  # Unix only; memory_report says so on Windows.
    import resource
except ImportError:
    resource = None

DEVICE_ENV_VAR = "CVCOURSE_DEVICE"
SUPPORTED_DEVICE_TYPES = ("cuda", "mps", "cpu")
INSTALL_FIX = (
    "install a matching torch/torchvision pair: "
    "`pip install -c requirements/torch-pair.txt -e .[dev]` in a checkout of the course, "
    "or `make install`"
)
_AMP_DTYPE_NAMES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
}
_SHORT_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``: ``torch.is_autocast_enabled(device_type)``, which torch 2.3 lacks
    (there it takes no argument and answers for CUDA; the CPU has its own function)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return device_type == "cuda" and torch.is_autocast_enabled()


def _as_device(device: str | torch.device) -> torch.device:
    """Parse ``device`` into a ``torch.device`` of a type the course supports."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"unknown device {device!r}; use one of 'cuda', 'cuda:N', 'mps' or 'cpu' "
            f"(or pick_device() to choose automatically)"
        ) from error
    if parsed.type not in SUPPORTED_DEVICE_TYPES:
        raise ValueError(
            f"device type {parsed.type!r} is not supported by the course; "
            f"use one of 'cuda', 'cuda:N', 'mps' or 'cpu'"
        )
    return parsed


def _available_devices() -> list[str]:
    """Names of the devices this machine can use, best first."""
    available = []
    if torch.cuda.is_available():
        available += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        available.append("mps")
    return available + ["cpu"]


def _is_available(device: torch.device) -> bool:
    if device.type == "cuda":
        index = 0 if device.index is None else device.index
        return torch.cuda.is_available() and index < torch.cuda.device_count()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return True


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return ``preferred``, else ``$CVCOURSE_DEVICE``, else the best of cuda > mps > cpu."""
    source = ""
    if preferred is None and os.environ.get(DEVICE_ENV_VAR):
        preferred, source = os.environ[DEVICE_ENV_VAR], f" (from ${DEVICE_ENV_VAR})"
    if preferred is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = _as_device(preferred)
    if not _is_available(device):
        raise RuntimeError(
            f"device {str(device)!r}{source} is not available on this machine; "
            f"available: {', '.join(_available_devices())}. Choose one of them with "
            f"pick_device('cpu') or `export {DEVICE_ENV_VAR}=cpu`, or unset {DEVICE_ENV_VAR} "
            f"to choose automatically"
        )
    return device


@dataclass(frozen=True)
class AmpPolicy:
    """How a training step uses automatic mixed precision (``torch.autocast``)."""

    device_type: str
    dtype: torch.dtype | None  # None: mixed precision off, everything in float32
    use_scaler: bool  # loss scaling, needed for float16 gradients on CUDA

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> AbstractContextManager:
        """``torch.autocast`` context for the forward pass and the loss."""
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)

    def make_scaler(self) -> torch.amp.GradScaler:
        """``torch.amp.GradScaler``, enabled only for float16 on CUDA (otherwise a no-op)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.use_scaler)

    def describe(self) -> str:
        if not self.enabled:
            return f"off (float32) on {self.device_type}"
        scaler = " + GradScaler" if self.use_scaler else ""
        return f"{_SHORT_DTYPE_NAMES[self.dtype]} autocast{scaler} on {self.device_type}"


def _parse_amp_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or dtype in (torch.bfloat16, torch.float16):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _AMP_DTYPE_NAMES:
        return _AMP_DTYPE_NAMES[dtype.lower()]
    raise ValueError(
        f"unknown mixed-precision dtype {dtype!r}; use 'bf16' or 'fp16' "
        f"(or torch.bfloat16 / torch.float16), or enabled=False for float32"
    )


def _cuda_supports_bf16() -> bool:
    """Native bfloat16 (Ampere or newer); emulated bf16 on older GPUs such as the T4 is slow."""
    major, _ = torch.cuda.get_device_capability()
    return major >= 8


def amp_policy(
    device: str | torch.device,
    enabled: bool | None = None,
    dtype: torch.dtype | str | None = None,
) -> AmpPolicy:
    """Choose the mixed-precision policy for ``device``.

    cuda: on by default, bfloat16 where the GPU supports it natively, else float16 with a
    GradScaler. cpu: off unless asked for (then bfloat16). mps: off unless asked for (then
    float16, no scaler). Passing ``dtype`` turns mixed precision on unless ``enabled=False``.
    """
    device_type = _as_device(device).type
    forced_dtype = _parse_amp_dtype(dtype)
    if enabled is None:
        enabled = device_type == "cuda" or forced_dtype is not None
    if not enabled:
        return AmpPolicy(device_type, dtype=None, use_scaler=False)
    if forced_dtype is not None:
        chosen = forced_dtype
    elif device_type == "cuda":
        chosen = torch.bfloat16 if _cuda_supports_bf16() else torch.float16
    else:
        chosen = torch.bfloat16 if device_type == "cpu" else torch.float16
    if device_type == "cpu" and chosen == torch.float16:
        raise ValueError(
            "float16 mixed precision is not supported on cpu in this course; "
            "use dtype='bf16' on cpu, enabled=False for float32, or a cuda device for fp16"
        )
    use_scaler = device_type == "cuda" and chosen == torch.float16
    return AmpPolicy(device_type, dtype=chosen, use_scaler=use_scaler)


def _usable_cpu_count() -> int:
    """CPUs this process may run on (a container may see more than it is allowed to use)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def loader_kwargs(device: str | torch.device, num_workers: int | None = None) -> dict:
    """Keyword arguments for ``torch.utils.data.DataLoader`` suited to ``device``.

    By default worker processes (``min(4, CPUs - 1)``) only for cuda; on cpu and mps the
    data is loaded in the main process, which keeps notebooks simple and fast on laptops.
    """
    device_type = _as_device(device).type
    if num_workers is None:
        num_workers = min(4, _usable_cpu_count() - 1) if device_type == "cuda" else 0
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(
            f"expected num_workers to be an int >= 0, got {num_workers!r}; "
            f"pass 0 to load in the main process or None for the default"
        )
    return {
        "num_workers": num_workers,
        "pin_memory": device_type == "cuda",
        "persistent_workers": num_workers > 0,
    }


def to_device(obj: Any, device: str | torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor in ``obj`` (nested tuples, lists, dicts) to ``device``.

    ``Tensor.to`` keeps torchvision ``tv_tensors`` (images, boxes, masks) of their own type;
    anything that is not a tensor or a container is returned unchanged.
    """
    device = _as_device(device)
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {key: to_device(value, device, non_blocking) for key, value in obj.items()}
    if isinstance(obj, list):
        return [to_device(item, device, non_blocking) for item in obj]
    if isinstance(obj, tuple):
        moved = [to_device(item, device, non_blocking) for item in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else tuple(moved)  # namedtuple or tuple
    return obj


def _check_module(model: nn.Module, function_name: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"{function_name} expects a torch.nn.Module, got {type(model).__name__}; pass the model itself"
        )


def use_channels_last(model: nn.Module) -> nn.Module:
    """Store the model's 4-D weights as channels-last (NHWC), often faster for convolutions with AMP.

    Feed it inputs converted with ``x.to(memory_format=torch.channels_last)`` as well.
    """
    _check_module(model, "use_channels_last")
    return model.to(memory_format=torch.channels_last)


def maybe_compile(model: nn.Module, enabled: bool, **kwargs: Any) -> nn.Module:
    """``torch.compile(model, **kwargs)`` when ``enabled``, else ``model`` itself."""
    _check_module(model, "maybe_compile")
    return torch.compile(model, **kwargs) if enabled else model


def _format_bytes(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.2f} GB" if num_bytes >= 1e9 else f"{num_bytes / 1e6:.1f} MB"


def _peak_rss_bytes() -> int | None:
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kilobytes on Linux


def memory_report(device: str | torch.device) -> str:
    """One line on memory use: CUDA allocated/reserved/peak, MPS allocated, else process peak RSS."""
    device = _as_device(device)
    if device.type == "cuda":
        return (
            f"{device} ({torch.cuda.get_device_name(device)}): "
            f"allocated {_format_bytes(torch.cuda.memory_allocated(device))}, "
            f"reserved {_format_bytes(torch.cuda.memory_reserved(device))}, "
            f"peak allocated {_format_bytes(torch.cuda.max_memory_allocated(device))}"
        )
    if device.type == "mps":
        return (
            f"mps: allocated {_format_bytes(torch.mps.current_allocated_memory())}, "
            f"driver {_format_bytes(torch.mps.driver_allocated_memory())}"
        )
    peak = _peak_rss_bytes()
    if peak is None:
        return "cpu: process peak RSS is not available on this platform (no `resource` module)"
    return f"cpu: process peak RSS {_format_bytes(peak)}"


def environment_report(device: str | torch.device | None = None) -> dict:
    """Versions, device, GPU and mixed-precision policy: paste it into a bug report."""
    import torchvision

    device = pick_device(device)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda_runtime": torch.version.cuda,
        "device": str(device),
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "amp": amp_policy(device).describe(),
        "cpu_count": _usable_cpu_count(),
    }


def _check_torchvision_ops(device: torch.device) -> None:
    """Run ``torchvision.ops.nms`` on a known example; it needs torchvision's compiled ops."""
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept = nms(boxes.to(device), scores.to(device), iou_threshold=0.5).cpu()
    if kept.tolist() != [0, 2]:
        raise RuntimeError(f"torchvision.ops.nms returned {kept.tolist()} instead of [0, 2]")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cvcourse.device [--check] [--device DEVICE]``."""
    parser = argparse.ArgumentParser(prog="python -m cvcourse.device", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="also run torchvision.ops.nms on the device")
    parser.add_argument(
        "--device", default=None, help=f"cuda, cuda:N, mps or cpu (default: ${DEVICE_ENV_VAR}, else the best)"
    )
    args = parser.parse_args(argv)
    try:
        device = pick_device(args.device)
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        for name, value in environment_report(device).items():
            print(f"{name:>13}: {value}")
        if args.check:
            _check_torchvision_ops(device)
            print(f"torchvision.ops.nms runs on {device}: OK")
    except (ImportError, RuntimeError) as error:
        print(
            f"error: torchvision does not work with this torch ({torch.__version__}): {error}\n"
            f"This happens when torch and torchvision come from mismatched builds. Fix: {INSTALL_FIX}.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
