"""Holding a small dataset in memory, so training reads tensors instead of drawing images."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


def materialize(dataset: Dataset, target_key: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack every ``(image, target)`` of ``dataset`` into ``(images (N, C, H, W), targets (N, ...))``.

    Targets may be class labels (ints), masks (tensors), or dicts, from which ``target_key`` picks one
    entry (``"mask"`` for SyntheticCells). The results are plain tensors, not tv_tensors: a
    ``TensorDataset`` of them is the fastest loader there is.
    """
    if len(dataset) == 0:
        raise ValueError("Cannot materialize an empty dataset.")
    images, targets = zip(*(dataset[i] for i in range(len(dataset))))
    if not all(torch.is_tensor(image) for image in images):
        raise TypeError(f"materialize expects (image tensor, target) items, got {type(images[0]).__name__} images.")
    if isinstance(targets[0], Mapping):
        if target_key not in targets[0]:
            raise KeyError(f"The targets are dicts with keys {sorted(targets[0])}: pass target_key= one of them.")
        targets = [target[target_key] for target in targets]
    plain = [torch.as_tensor(target).as_subclass(torch.Tensor) for target in targets]
    return torch.stack([image.as_subclass(torch.Tensor) for image in images]), torch.stack(plain)


def shuffled_batches(*tensors: torch.Tensor, batch_size: int, seed: int, drop_last: bool = True) -> DataLoader:
    """Batches of ``tensors`` (e.g. images, labels), reshuffled every pass in an order fixed by ``seed``; full ones
    only unless ``drop_last=False`` (then the last batch of a pass may be smaller)."""
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True, drop_last=drop_last,
                      generator=torch.Generator().manual_seed(seed))
