"""Holding a small classification dataset in memory, so training reads tensors instead of drawing images."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


def materialize(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack every ``(image, label)`` of ``dataset`` into ``(images (N, C, H, W), labels (N,))``.

    Plain tensors, not tv_tensors: a ``TensorDataset`` of them is the fastest loader there is.
    """
    if len(dataset) == 0:
        raise ValueError("Cannot materialize an empty dataset.")
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    if not all(torch.is_tensor(image) for image in images):
        raise TypeError(f"materialize expects (image tensor, label) items, got {type(images[0]).__name__} images.")
    return torch.stack([image.as_subclass(torch.Tensor) for image in images]), torch.as_tensor(labels)
