"""Where downloaded datasets live, and one clear error when one is missing.

The course never downloads behind your back: a chapter that needs a real dataset calls
``require_folder`` and, if the data is not there yet, the error says how to get it and where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

DATA_ENV = "CVCOURSE_DATA"


def data_root() -> Path:
    """The folder datasets live in.

    ``$CVCOURSE_DATA`` if set; else the checkout's ``data/`` folder when the package runs from a source
    checkout (recognised by its ``data/README.md``); else ``~/.cache/cvcourse/data``.
    """
    configured = os.environ.get(DATA_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    checkout_data = Path(__file__).resolve().parents[2] / "data"
    if (checkout_data / "README.md").is_file():
        return checkout_data
    return Path.home() / ".cache" / "cvcourse" / "data"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder is missing or incomplete; the message says how to get it and where to put it."""


def require_folder(
    path: str | os.PathLike, *, dataset: str, expected: Sequence[str] = (), how_to_get: str
) -> Path:
    """Return ``path`` if it is a folder holding every ``expected`` entry, else raise DatasetNotFoundError.

    ``expected`` are names (files or folders) relative to ``path``; ``how_to_get`` tells the reader
    where the data comes from (a URL, a command).
    """
    folder = Path(path).expanduser()
    if folder.is_file():
        problem = f"{folder} is a file, not a folder"
    elif not folder.is_dir():
        problem = f"the folder {folder} does not exist"
    else:
        missing = [name for name in expected if not (folder / name).exists()]
        if not missing:
            return folder
        problem = f"{folder} exists but lacks {', '.join(missing)}"
    layout = f" so that it contains {', '.join(expected)}" if expected else ""
    raise DatasetNotFoundError(
        f"Dataset {dataset!r} not found: {problem}. How to get it: {how_to_get}. "
        f"Where to put it: {folder}{layout}. "
        f"Datasets live under {data_root()}; set the {DATA_ENV} environment variable to keep them elsewhere."
    )
