"""Classical segmentation: Otsu's threshold, then counting the connected objects of the mask.

Otsu (1979), "A threshold selection method from gray-level histograms": split the histogram into a
dark class 0 and a bright class 1 at the threshold that maximises the between-class variance

    sigma_b^2(t) = w0(t) w1(t) (mu0(t) - mu1(t))^2                          (Otsu 1979, eq. 18)

where w0, w1 are the fractions of pixels in each class and mu0, mu1 their mean intensities.
Equivalently it minimises the within-class variance, since the two add up to the total variance.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

CONNECTIVITY_STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


def check_grayscale(image: torch.Tensor) -> None:
    """Raise unless ``image`` is a real-valued (H, W) tensor without NaN or infinity."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected an image tensor (H, W), got {type(image).__name__}; convert with torch.as_tensor")
    if image.ndim != 2:
        raise ValueError(
            f"expected a grayscale image (H, W), got shape {tuple(image.shape)}; for a colour image (3, H, W) "
            "use torchvision.transforms.v2.functional.rgb_to_grayscale(image)[0], for (1, H, W) use image[0]"
        )
    if image.dtype == torch.bool or image.is_complex():
        raise TypeError(f"expected intensities (a float or integer image), got dtype {image.dtype}")
    if not torch.isfinite(image.double()).all():
        raise ValueError("the image contains NaN or infinite values; replace them first, e.g. with torch.nan_to_num")


def between_class_variance(image: torch.Tensor, bins: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Otsu's sigma_b^2 of every split of the histogram of a grayscale image (H, W), all at once.

    Returns the bin centres (bins,) and the variances (bins - 1,): entry k splits the histogram into
    bins 0..k (class 0) and bins k+1.. (class 1); NaN where one class is empty (no split at all).
    As in scikit-image, a float image's histogram has ``bins`` equal bins from its min to its max
    (``torch.histc``), and an integer image's (uint8 ...) has one bin per integer value from its min to its max.
    """
    check_grayscale(image)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins should be an integer >= 2, got {bins!r}; 256 suits most images")
    low, high = image.min().item(), image.max().item()
    if low == high:
        raise ValueError(
            f"no threshold separates a constant image (every pixel is {low}); "
            "check that the image was loaded correctly, or treat it as all background"
        )
    if image.is_floating_point():
        histogram = torch.histc(image.double().cpu(), bins=bins, min=low, max=high)
        centres = low + (torch.arange(bins, dtype=torch.float64) + 0.5) * (high - low) / bins
    else:
        histogram = torch.bincount((image.long() - int(low)).flatten().cpu(), minlength=int(high - low) + 1).double()
        centres = torch.arange(int(low), int(high) + 1, dtype=torch.float64)
    p = histogram / histogram.sum()
    # Cumulative sums from the left give class 0 of every split, from the right class 1.
    w0 = p.cumsum(0)[:-1]
    w1 = p.flip(0).cumsum(0).flip(0)[1:]
    mu0 = (p * centres).cumsum(0)[:-1] / w0
    mu1 = (p * centres).flip(0).cumsum(0).flip(0)[1:] / w1
    return centres, w0 * w1 * (mu0 - mu1) ** 2  # an empty class gives 0 / 0 = NaN


def otsu_threshold(image: torch.Tensor, bins: int = 256) -> float:
    """Otsu's threshold of a grayscale image (H, W): foreground is ``image > threshold``.

    The split with the largest ``between_class_variance``; the threshold is the centre of the last bin
    of the dark class, as in ``skimage.filters.threshold_otsu``.
    """
    centres, variance = between_class_variance(image, bins)
    return centres[variance.nan_to_num(0.0).argmax()].item()


def otsu_masks(images: torch.Tensor) -> torch.Tensor:
    """Each grayscale image of a batch thresholded at its own Otsu threshold: (N, 1, H, W) -> (N, H, W) int64."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"otsu_masks expects a batch of grayscale images (N, 1, H, W), got {shape}; add the channel "
                         "dimension with images.unsqueeze(1), or convert colour images to grayscale first.")
    return torch.stack([(image[0] > otsu_threshold(image[0])).long() for image in images])


def threshold(image: torch.Tensor, t: float) -> torch.Tensor:
    """The bool mask ``image > t`` (foreground strictly above the threshold, as with skimage)."""
    return image > t


def label_objects(mask: torch.Tensor, connectivity: int = 4) -> torch.Tensor:
    """Connected components of a binary mask (H, W), via ``scipy.ndimage.label``: int64 (H, W) with 0 for
    the background and 1..N for the objects.

    ``connectivity=4``: pixels touching by an edge belong together (scipy's default);
    ``connectivity=8``: diagonal neighbours too, so two squares touching at a corner are one object.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"expected one binary mask (H, W), got {shape}; label the masks of a batch one by one")
    if mask.is_floating_point():
        raise ValueError(
            f"expected a binary mask (bool, or integers 0 and 1), got dtype {mask.dtype}; "
            "make one with threshold(image, t), or (mask > 0.5) for a float mask"
        )
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError(
            f"expected a binary mask of 0s and 1s, got values {mask.unique().tolist()[:10]}; "
            "for a label image use (labels > 0)"
        )
    if connectivity not in CONNECTIVITY_STRUCTURES:
        raise ValueError(f"connectivity should be 4 (edge neighbours) or 8 (diagonals too), got {connectivity!r}")
    labels, _ = ndimage.label(mask.cpu().numpy(), structure=CONNECTIVITY_STRUCTURES[connectivity])
    return torch.from_numpy(labels.astype(np.int64))


def count_objects(mask: torch.Tensor, connectivity: int = 4) -> int:
    """Number of connected objects in a binary mask (H, W); see ``label_objects`` for ``connectivity``."""
    return int(label_objects(mask, connectivity).max())
