"""The U-Net paper's pixel weight map (Ronneberger et al. 2015, "U-Net", eq. 2):

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)),     w0 = 10, sigma = 5 pixels

- w_c balances the class frequencies: here background and foreground pixels each carry half of the
  total weight (``class_balance_weights``);
- d1(x), d2(x) are the distances from pixel x to the nearest and the second-nearest cell. The term is
  large in the narrow gaps between touching cells, so the loss insists on separating them. It is
  added to background pixels only, where the paper's Fig. 3d shows it (inside a cell d1 = 0, and the
  term would only weight the cell's own rim).

With fewer than two cells there is no second-nearest cell and no gap to separate: w = w_c.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from cvcourse.segmentation.metrics import check_class_labels


def check_instances(instances: torch.Tensor) -> None:
    """Raise unless ``instances`` is an integer (H, W) map: 0 for background, 1, 2, ... for the cells."""
    if not isinstance(instances, torch.Tensor) or instances.ndim != 2:
        shape = tuple(instances.shape) if isinstance(instances, torch.Tensor) else type(instances).__name__
        raise ValueError(
            f"expected an instance map (H, W), got {shape}; compute the weight map of each image of a batch "
            "separately and stack them with torch.stack"
        )
    if instances.is_floating_point() or instances.dtype == torch.bool:
        raise ValueError(
            f"expected integer cell ids (0 = background, 1, 2, ... one per cell), got dtype {instances.dtype}; "
            "for a binary mask, number its cells with cvcourse.segmentation.label_objects(mask)"
        )
    if (instances < 0).any():
        raise ValueError(
            f"cell ids should be >= 0 (0 = background), got minimum {instances.min().item()}; "
            "map the ignored or unknown pixels to 0"
        )


def class_balance_weights(mask: torch.Tensor) -> torch.Tensor:
    """w_c: float32 (H, W) weight of each pixel of a binary mask (H, W), equal to
    n_pixels / (n_classes_present * n_pixels_of_its_class), so that every class present carries the same
    total weight (scikit-learn's ``class_weight="balanced"``)."""
    labels = mask.long().flatten()
    counts = torch.bincount(labels)
    weights = labels.numel() / ((counts > 0).sum() * counts.clamp_min(1))
    return weights[labels].reshape(mask.shape).float()


def distances_to_cells(instances: torch.Tensor) -> torch.Tensor:
    """float64 (N, H, W): the Euclidean distance of every pixel to cell 1, ..., N
    (``scipy.ndimage.distance_transform_edt`` of the pixels outside that cell)."""
    instances = instances.cpu().numpy()
    cell_ids = np.unique(instances[instances > 0])
    distances = np.zeros((len(cell_ids), *instances.shape))
    for n, cell_id in enumerate(cell_ids):
        distances[n] = ndimage.distance_transform_edt(instances != cell_id)
    return torch.from_numpy(distances)


def unet_weight_map(
    instances: torch.Tensor, *, mask: torch.Tensor | None = None, w0: float = 10.0, sigma: float = 5.0
) -> torch.Tensor:
    """float32 (H, W) weight map of eq. 2 (module docstring) for an instance map (H, W): 0 for the
    background, one positive id per cell. Use it as ``weight_map`` in ``weighted_bce``.

    ``mask`` is the binary target (H, W) when it is not simply ``instances > 0``: ``SyntheticCells``
    keeps whole cells in ``target["instances"]`` but cuts background gaps between touching cells out of
    ``target["mask"]``; pass ``mask=target["mask"]`` so that the cells are ``instances`` inside the mask
    and the gaps count as background, as in the paper.
    """
    check_instances(instances)
    if mask is None:
        mask = instances > 0
    check_class_labels(mask, 2, "mask")
    if mask.shape != instances.shape:
        raise ValueError(
            f"mask should have the instances' shape {tuple(instances.shape)}, got {tuple(mask.shape)}; "
            "pass the binary target of the same image"
        )
    if w0 < 0 or sigma <= 0:
        raise ValueError(f"w0 should be >= 0 and sigma > 0, got w0={w0}, sigma={sigma}; the paper uses 10 and 5")
    background = mask == 0
    class_weights = class_balance_weights(~background)
    distances = distances_to_cells(instances.masked_fill(background, 0)).to(instances.device)
    if len(distances) < 2:
        return class_weights
    d1, d2 = distances.topk(2, dim=0, largest=False).values  # nearest and second-nearest cell
    border = w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    return (class_weights + border * background).float()
