"""From a detector's scores to a decision: the threshold picked on training data, and what it gives elsewhere.

AUROC (``cvcourse.metrics.auroc``) ranks scores without a threshold, but a deployed detector must pick one. It is
chosen on the generator the detector trained on; on another generator the scores can shift, so AUROC can stay
high while the accuracy at that threshold falls to chance (Ojha et al. 2023 report both for this reason).
"""

from __future__ import annotations

import torch

from cvcourse.metrics import auroc


def labelled(real: torch.Tensor, generated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and generated images in one batch, with labels 0 (real) and 1 (generated)."""
    labels = torch.cat([torch.zeros(len(real), dtype=torch.int64), torch.ones(len(generated), dtype=torch.int64)])
    return torch.cat([real, generated]), labels


def _check(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scores, labels = torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must be 1-D of one length, got {tuple(scores.shape)} and "
                         f"{tuple(labels.shape)}.")
    if ((labels != 0) & (labels != 1)).any():
        raise ValueError("labels must be 0 (real) or 1 (generated).")
    return scores, labels.bool()


def best_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The threshold with the highest accuracy on (``scores``, ``labels``), calling ``score >= threshold``
    generated: the midpoint between two neighbouring distinct scores (or beyond the extremes)."""
    scores, labels = _check(scores, labels)
    values = scores.unique()  # sorted
    candidates = torch.cat([values[:1] - 1, (values[1:] + values[:-1]) / 2, values[-1:] + 1])
    called_generated = scores[None, :] >= candidates[:, None]
    accuracies = (called_generated == labels[None, :]).double().mean(1)
    return float(candidates[accuracies.argmax()])


def accuracy_at(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> float:
    """The share of images called right when ``score >= threshold`` means generated."""
    scores, labels = _check(scores, labels)
    return float(((scores >= threshold) == labels).double().mean())


def detection_report(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, float]:
    """AUROC and the accuracy at ``threshold`` (picked on the training generator), side by side."""
    return {"auroc": auroc(scores, labels), "accuracy": accuracy_at(scores, labels, threshold)}
